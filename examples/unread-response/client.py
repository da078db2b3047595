"""A user's own client: sends a request, reads the first byte of the answer, and exits.

Whatever the server sent beyond that byte is still unread when the socket
closes, so the kernel resets the connection instead of closing it.
"""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port)) as s:
    s.sendall(b"hello")
    first = s.recv(1)
    print(f"got {first!r}, leaving")

/* The articles' connect with a timeout: a non-blocking connect(), then select()
 * for writability with a timeout in microseconds; on timeout, close.
 *
 * The server's SYN/ACK comes back after the client gave up: the socket is
 * gone, so the client's kernel answers the late SYN/ACK with RST. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: client HOST PORT TIMEOUT_US\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
        printf("connected at once\n");
        return 0;
    }
    if (errno != EINPROGRESS) {
        printf("connect: %s\n", strerror(errno));
        return 1;
    }
    fd_set writable;
    FD_ZERO(&writable);
    FD_SET(fd, &writable);
    long usec = atol(argv[3]);
    struct timeval tv = {.tv_sec = usec / 1000000, .tv_usec = usec % 1000000};
    int ready = select(fd + 1, NULL, &writable, NULL, &tv);
    if (ready == 0) {
        printf("connect time out after %ld us\n", usec);
        close(fd);
        return 3;
    }
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    printf("connect: %s\n", err ? strerror(err) : "connected");
    close(fd);
    return err ? 1 : 0;
}

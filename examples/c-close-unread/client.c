/* The articles' client: connect, write 5000 bytes, wait, write again, then read.
 *
 * It waits with poll() until the server answers or goes (at most 5 s) rather
 * than for a fixed time, so a loaded machine does not change what it shows.
 *
 * The server closed with unread data, so its kernel answered with RST. The
 * first write after the RST fails with ECONNRESET ("Connection reset by peer");
 * the next one raises SIGPIPE, which kills a program that did not ignore it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void say(const char *what, ssize_t n)
{
    if (n < 0)
        printf("%s: %s\n", what, strerror(errno));
    else
        printf("%s: %zd bytes\n", what, n);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: client HOST PORT\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("connect");
        return 1;
    }
    static char data[5000];
    memset(data, 'x', sizeof data);
    say("write 1", write(fd, data, sizeof data));
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ready = poll(&p, 1, 5000);              /* the server reads 4096 and closes meanwhile */
    printf("poll: %d, revents%s%s%s\n", ready, p.revents & POLLIN ? " POLLIN" : "",
           p.revents & POLLERR ? " POLLERR" : "", p.revents & POLLHUP ? " POLLHUP" : "");
    fflush(stdout);
    say("write 2", write(fd, data, sizeof data));
    say("write 3", write(fd, data, sizeof data));
    char buf[100];
    say("read", read(fd, buf, sizeof buf));
    return 0;
}

/* The articles' server: accept one connection, read at most 4096 bytes once, close.
 *
 * Whatever the client sent beyond those 4096 bytes is still unread when
 * close() runs, so the kernel resets the connection instead of closing it. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY};
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 16) < 0) {
        perror("bind/listen");
        return 1;
    }
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
        perror("accept");
        return 1;
    }
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    printf("read %zd bytes\n", n);
    fflush(stdout);
    close(fd);
    printf("closed\n");
    close(lfd);
    return 0;
}

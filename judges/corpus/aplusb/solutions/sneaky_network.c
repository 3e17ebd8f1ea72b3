/* Hostile: tries the network. TCP connects (300 ms each) to 1.1.1.1:53,
   8.8.8.8:53 and the daemon's own 127.0.0.1:7070. It prints the RIGHT
   answer only if one connected (a leak: ACCEPTED), a wrong one otherwise:
   WRONG_ANSWER is what a sandbox without network gives. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int try_connect(const char *ip, int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
        fprintf(stderr, "socket(AF_INET): %s\n", strerror(errno));
        return 0;
    }
    fcntl(s, F_SETFL, O_NONBLOCK);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, ip, &addr.sin_addr);
    int ok = 0;
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) == 0) {
        ok = 1;
    } else if (errno == EINPROGRESS) {
        struct pollfd p = {.fd = s, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof err;
        if (poll(&p, 1, 300) == 1 && getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) == 0) {
            ok = err == 0;
            if (err) errno = err;
        } else {
            errno = ETIMEDOUT;
        }
    }
    fprintf(stderr, "connect %s:%d: %s\n", ip, port, ok ? "CONNECTED" : strerror(errno));
    close(s);
    return ok;
}

int main(void) {
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2) return 1;
    int leaked = try_connect("1.1.1.1", 53) | try_connect("8.8.8.8", 53) |
                 try_connect("127.0.0.1", 7070);
    printf("%lld\n", leaked ? a + b : a + b + 1);
    return 0;
}

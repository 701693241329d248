/* The one UDP tool the test images need (Debian's busybox nc has no -u).
 *   udpecho -l PORT          answer every datagram with "<hostname> <payload>"
 *   udpecho [-s SPORT] HOST PORT [MSG]
 *                            send MSG (default "ping") from port SPORT (default:
 *                            any), print the answer; exit 1 if none comes in 2 s
 * Built static by images/build.sh into localhost/netcheck. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char buf[1500], host[256] = "?", out[1800];
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    if (fd < 0) { perror("socket"); return 2; }
    if (argc == 3 && strcmp(argv[1], "-l") == 0) {
        gethostname(host, sizeof host - 1);
        a.sin_port = htons(atoi(argv[2]));
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 2; }
        for (;;) {
            struct sockaddr_in from;
            socklen_t fl = sizeof from;
            ssize_t n = recvfrom(fd, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fl);
            if (n < 0) continue;
            buf[n] = 0;
            int m = snprintf(out, sizeof out, "%s %s", host, buf);
            sendto(fd, out, m, 0, (struct sockaddr *)&from, fl);
            printf("from %s: %s\n", inet_ntoa(from.sin_addr), buf);
            fflush(stdout);
        }
    }
    if (argc > 3 && strcmp(argv[1], "-s") == 0) {
        struct sockaddr_in me = {0};
        me.sin_family = AF_INET;
        me.sin_port = htons(atoi(argv[2]));
        if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0) { perror("bind"); return 2; }
        argv += 2;
        argc -= 2;
    }
    if (argc < 3) { fprintf(stderr, "usage: udpecho -l PORT | udpecho [-s SPORT] HOST PORT [MSG]\n"); return 2; }
    if (inet_aton(argv[1], &a.sin_addr) == 0) { fprintf(stderr, "bad address %s\n", argv[1]); return 2; }
    a.sin_port = htons(atoi(argv[2]));
    const char *msg = argc > 3 ? argv[3] : "ping";
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&a, sizeof a) < 0) { perror("sendto"); return 1; }
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n < 0) { fprintf(stderr, "no answer from %s:%s\n", argv[1], argv[2]); return 1; }
    buf[n] = 0;
    printf("%s\n", buf);
    return 0;
}

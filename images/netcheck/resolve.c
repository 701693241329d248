/* Asks DNS as glibc's own stub resolver does (res_search: /etc/resolv.conf's
 * name servers, search list and ndots), which busybox's nslookup does not
 * (it searches only names without a dot).
 *   resolve NAME [a|srv|cname]   one line per answer record
 *   resolve -x ADDRESS           the PTR record of an IPv4 address
 * Lines are "A 10.43.0.5", "CNAME name", "SRV prio weight port target",
 * "PTR name"; on failure "NXDOMAIN", "NODATA" or "SERVFAIL" and exit 1.
 * Built static by images/build.sh into localhost/netcheck. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    unsigned char ans[8192];
    char name[NS_MAXDNAME], q[NS_MAXDNAME];
    int type = ns_t_a;
    if (argc < 2) { fprintf(stderr, "usage: resolve NAME [a|srv|cname] | -x ADDRESS\n"); return 2; }
    snprintf(q, sizeof q, "%s", argv[1]);
    if (strcmp(argv[1], "-x") == 0 && argc == 3) {
        unsigned a, b, c, d;
        if (sscanf(argv[2], "%u.%u.%u.%u", &a, &b, &c, &d) != 4) { fprintf(stderr, "not an IPv4 address\n"); return 2; }
        snprintf(q, sizeof q, "%u.%u.%u.%u.in-addr.arpa.", d, c, b, a);
        type = ns_t_ptr;
    } else if (argc == 3) {
        if (strcmp(argv[2], "srv") == 0) type = ns_t_srv;
        else if (strcmp(argv[2], "cname") == 0) type = ns_t_cname;
    }
    res_init();
    int n = res_search(q, ns_c_in, type, ans, sizeof ans);
    if (n < 0) {
        puts(h_errno == HOST_NOT_FOUND ? "NXDOMAIN" : h_errno == NO_DATA ? "NODATA" : "SERVFAIL");
        return 1;
    }
    ns_msg msg;
    if (ns_initparse(ans, n, &msg) < 0) { puts("SERVFAIL"); return 1; }
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0) continue;
        const unsigned char *rd = ns_rr_rdata(rr);
        switch (ns_rr_type(rr)) {
        case ns_t_a:
            inet_ntop(AF_INET, rd, name, sizeof name);
            printf("A %s\n", name);
            break;
        case ns_t_cname:
        case ns_t_ptr:
            if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd, name, sizeof name) < 0) continue;
            printf("%s %s\n", ns_rr_type(rr) == ns_t_ptr ? "PTR" : "CNAME", name);
            break;
        case ns_t_srv:
            if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd + 6, name, sizeof name) < 0) continue;
            printf("SRV %u %u %u %s\n", ns_get16(rd), ns_get16(rd + 2), ns_get16(rd + 4), name);
            break;
        }
    }
    return 0;
}

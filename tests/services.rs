//! Services on real nodes in network namespaces: three nodes on one link
//! and a fourth behind a router (`Net::routed`), a Deployment of echo pods
//! (HTTP on 8080 and UDP on 9000, each answering with its own name), and a
//! NodePort Service in front of it.

mod common;

use common::netns::{in_ns, Net, OUTSIDE};
use common::workload;
use std::collections::BTreeSet;

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 3
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: localhost/netcheck
        command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && touch /www/ready && (udpecho -l 9000 &) && exec httpd -f -p 8080 -h /www']
        ports:
        - {name: http, containerPort: 8080}
        - {name: echo, containerPort: 9000, protocol: UDP}
        readinessProbe:
          exec: {command: [cat, /www/ready]}
          periodSeconds: 1
          failureThreshold: 1
";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: NodePort
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: udp, port: 90, protocol: UDP, targetPort: echo}
";

const CLIENT: &str = "apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: h4}
  containers:
  - name: c
    image: localhost/netcheck
    command: [sleep, '3600']
";

fn http(ip: &str, port: u16) -> String {
    format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port} | tail -n 1")
}

/// `get svc echo -o json` from host 1.
fn service(net: &Net) -> serde_json::Value {
    serde_json::from_str(&net.ok(1, &["get", "svc", "echo", "-o", "json", "--server", &net.addr(1)])).unwrap()
}

/// The ready endpoint addresses of `echo`, as host `i` sees them.
fn endpoints(net: &Net, i: usize) -> BTreeSet<String> {
    endpoint_nodes(net, i).into_iter().map(|(ip, _)| ip).collect()
}

/// The ready endpoints of `echo` with their nodes, as host `i` sees them.
fn endpoint_nodes(net: &Net, i: usize) -> BTreeSet<(String, String)> {
    let out = net.ok(i, &["get", "ep", "echo", "-o", "json", "--server", &net.addr(i)]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            let field = |k: &str| a[k].as_str().unwrap_or_default().to_string();
            (field("ip"), field("nodeName"))
        })
        .collect()
}

/// An `nft list ruleset`'s tables, chains, maps and sets, each whole, sorted.
fn blocks(listing: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in listing.lines() {
        let top = line.starts_with("table ") || line.starts_with('}');
        let head = line.starts_with("\tchain ") || line.starts_with("\tmap ") || line.starts_with("\tset ");
        if (top || head) && !cur.trim().is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push_str(line.trim_end());
        cur.push('\n');
    }
    out.push(cur);
    let mut out: Vec<String> = out
        .into_iter()
        .map(|b| b.trim_end().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    out.sort();
    out
}

/// Asks `n` times from pod `pod` on host `i`; the names that answered.
fn answers(net: &Net, i: usize, pod: &str, script: &str, n: usize) -> Vec<String> {
    (0..n)
        .filter_map(|_| net.exec(i, pod, script).ok())
        .map(|o| o.trim().to_string())
        .filter(|o| !o.is_empty())
        .collect()
}

const HEADLESS: &str = "apiVersion: v1
kind: Service
metadata: {name: echo-all}
spec:
  clusterIP: None
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: http}
---
apiVersion: v1
kind: Pod
metadata: {name: plain-dns}
spec:
  dnsPolicy: Default
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: h2}
  containers:
  - {name: c, image: localhost/netcheck, command: [sleep, '3600']}
---
apiVersion: v1
kind: Service
metadata: {name: outside}
spec:
  type: ExternalName
  externalName: www.example.test
";

/// `resolve ARGS` (glibc's resolver, images/netcheck/resolve.c) from the
/// client pod: its lines, answers or the error it printed.
fn resolve(net: &Net, args: &str) -> String {
    net.exec(4, "client", &format!("resolve {args} 2>&1; true")).unwrap_or_else(|e| e)
}

/// The addresses of `resolve`'s A lines.
fn addresses(out: &str) -> BTreeSet<String> {
    out.lines().filter_map(|l| l.strip_prefix("A ")).map(str::to_string).collect()
}

/// The host that runs pod `name` (0 while it has none).
fn pod_host(net: &Net, name: &str) -> usize {
    net.pods(1, false)
        .unwrap()
        .iter()
        .find(|p| p["pod"]["metadata"]["name"] == name)
        .and_then(|p| p["status"]["nodeName"].as_str()?.trim_start_matches('h').parse().ok())
        .unwrap_or(0)
}

/// The pod IPs of the pods whose names start with `prefix`, from host 1.
fn pod_ips(net: &Net, prefix: &str) -> BTreeSet<String> {
    net.pods(1, false)
        .unwrap()
        .iter()
        .filter(|p| p["pod"]["metadata"]["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .collect()
}

/// The cluster DNS, from the pod behind the router: a Service by its
/// short, namespaced and full names; a headless Service's pods, and the
/// DNS page's example pods by hostname; SRV and PTR; names outside the
/// cluster and an ExternalName through the node's resolver (dnsmasq
/// outside); the pods' resolv.conf for ClusterFirst, Default and None
/// (the DNS page's example, with the file it shows).
fn cluster_dns(net: &mut Net, vip: &str) {
    net.serve_outside_dns("www.example.test", "10.90.0.77");
    net.apply_ok(1, HEADLESS);
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes");
    for f in ["dns-subdomain.yaml", "dns-example.yaml"] {
        net.apply_ok(1, &std::fs::read_to_string(examples.join(f)).unwrap());
    }
    let resolv = net.exec(4, "client", "cat /etc/resolv.conf").unwrap();
    assert_eq!(
        resolv,
        "nameserver 10.43.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
    );
    let want = BTreeSet::from([vip.to_string()]);
    for name in ["echo", "echo.default", "echo.default.svc.cluster.local"] {
        let got = net.wait_for(20, &format!("{name} resolves"), || {
            Some(resolve(net, name)).filter(|o| !addresses(o).is_empty())
        });
        assert_eq!(addresses(&got), want, "resolve {name}:\n{got}");
    }
    let echo_ips = pod_ips(net, "echo-");
    assert_eq!(echo_ips.len(), 3, "{echo_ips:?}");
    let got = net.wait_for(20, "the headless Service lists every pod", || {
        Some(resolve(net, "echo-all")).filter(|o| addresses(o) == echo_ips)
    });
    assert_eq!(addresses(&got), echo_ips, "{got}");
    let named_ip = net.wait_for(60, "busybox1 has an address", || pod_ips(net, "busybox1").into_iter().next());
    let got = net.wait_for(30, "a pod by hostname.subdomain", || {
        Some(resolve(net, "busybox-1.busybox-subdomain")).filter(|o| !addresses(o).is_empty())
    });
    assert_eq!(addresses(&got), BTreeSet::from([named_ip.clone()]), "{got}");
    let on = pod_host(net, "busybox1");
    let me = net.wait_for(30, "busybox1 runs", || {
        net.exec(on, "busybox1", "hostname; tail -n 1 /etc/hosts").ok()
    });
    assert_eq!(
        me,
        format!("busybox-1\n{named_ip}\tbusybox-1.busybox-subdomain.default.svc.cluster.local\tbusybox-1\n")
    );
    let srv = resolve(net, "_http._tcp.echo srv");
    assert_eq!(srv.trim(), "SRV 0 100 80 echo.default.svc.cluster.local", "{srv}");
    let srv = resolve(net, "_http._tcp.echo-all srv");
    assert_eq!(srv.lines().filter(|l| l.starts_with("SRV 0 33 8080 ")).count(), 3, "{srv}");
    assert_eq!(resolve(net, &format!("-x {vip}")).trim(), "PTR echo.default.svc.cluster.local");
    assert_eq!(
        resolve(net, &format!("-x {named_ip}")).trim(),
        "PTR busybox-1.busybox-subdomain.default.svc.cluster.local"
    );
    assert_eq!(resolve(net, "nothing-here.default.svc.cluster.local").trim(), "NXDOMAIN");
    // Outside the cluster: forwarded to the node's resolver.
    let got = resolve(net, "www.example.test");
    assert_eq!(addresses(&got), BTreeSet::from(["10.90.0.77".to_string()]), "{got}");
    let got = resolve(net, "outside");
    assert!(got.contains("CNAME www.example.test") && got.contains("A 10.90.0.77"), "{got}");
    // dnsPolicy Default: the node's own resolv.conf.
    let plain = net.wait_for(30, "plain-dns running", || net.exec(2, "plain-dns", "cat /etc/resolv.conf").ok());
    assert_eq!(plain, std::fs::read_to_string(net.resolv_conf()).unwrap());
    // dnsPolicy None: only the pod's dnsConfig.
    let on = net.wait_for(30, "dns-example placed", || Some(pod_host(net, "dns-example")).filter(|h| *h > 0));
    let custom = net.wait_for(30, "dns-example running", || {
        net.exec(on, "dns-example", "cat /etc/resolv.conf").ok()
    });
    assert_eq!(
        custom,
        "nameserver 192.0.2.1\nsearch ns1.svc.cluster-domain.example my.dns.search.suffix\noptions ndots:2 edns0\n"
    );
}

#[test]
fn a_service_balances_over_ready_pods_from_pods_nodes_and_outside_and_forgets_the_gone() {
    let mut net = Net::routed_with_spare(3, 1, 1);
    for i in 1..=4 {
        for image in ["netcheck.tar", "busybox-128.tar", "nginx-latest.tar"] {
            net.import(i, image);
        }
    }
    net.apply_ok(1, DEPLOYMENT);
    net.apply_ok(1, SERVICE);
    net.apply_ok(1, CLIENT);
    let pods = workload::wait_ready(&net, 1, "echo", 3, 90, |_| true);
    let names: BTreeSet<String> = pods.iter().map(|p| p.name.clone()).collect();
    let svc = service(&net);
    let vip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(vip.starts_with("10.43."), "{svc}");
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
    assert!((30000..=32767).contains(&node_port), "{svc}");
    net.wait_for(30, "client running", || net.exec(4, "client", "true").ok());
    // Every node works the endpoints out the same way.
    for i in 1..=4 {
        net.wait_for(20, &format!("h{i} sees three endpoints"), || {
            (endpoints(&net, i).len() == 3).then_some(())
        });
    }

    // From a pod behind the router, TCP and UDP reach all three replicas.
    let mut seen = BTreeSet::new();
    for _ in 0..60 {
        seen.extend(answers(&net, 4, "client", &http(&vip, 80), 1));
        if seen == names {
            break;
        }
    }
    assert_eq!(seen, names, "TCP through {vip}:80 reached only {seen:?}");
    let mut seen = BTreeSet::new();
    for _ in 0..60 {
        for a in answers(&net, 4, "client", &format!("udpecho {vip} 90 x"), 1) {
            seen.insert(a.trim_end_matches(" x").to_string());
        }
        if seen == names {
            break;
        }
    }
    assert_eq!(seen, names, "UDP through {vip}:90 reached only {seen:?}");

    // NodePort: a client outside the cluster, through every node's address.
    for i in 1..=4 {
        let addr = net.host(i).ip.clone();
        let out = in_ns(net.outside())
            .args(["busybox", "sh", "-c", &http(&addr, node_port)])
            .output()
            .unwrap();
        let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            names.contains(&got),
            "node port {addr}:{node_port} from outside answered {got:?} ({out:?})"
        );
    }
    assert!(OUTSIDE.starts_with("10.90"));

    // Hairpin: a replica reaches itself through its own Service.
    let me = pods[0].clone();
    let host = me.node.trim_start_matches('h').parse::<usize>().unwrap();
    let mut hit_self = false;
    for _ in 0..60 {
        if answers(&net, host, &me.name, &http(&vip, 80), 1).contains(&me.name) {
            hit_self = true;
            break;
        }
    }
    assert!(hit_self, "{} never reached itself through {vip}", me.name);

    cluster_dns(&mut net, &vip);

    // A replica whose readiness fails stops getting traffic.
    let sick = pods[1].clone();
    let sick_host = sick.node.trim_start_matches('h').parse::<usize>().unwrap();
    net.exec(sick_host, &sick.name, "rm /www/ready").unwrap();
    for i in [1, 4] {
        net.wait_for(20, &format!("h{i} drops the unready endpoint"), || {
            (endpoints(&net, i).len() == 2).then_some(())
        });
    }
    let got = answers(&net, 4, "client", &http(&vip, 80), 30);
    assert!(
        got.len() >= 25 && !got.contains(&sick.name),
        "the unready {} still answered: {got:?}",
        sick.name
    );

    // A deleted replica gets neither TCP nor UDP afterwards, not even a
    // UDP client that keeps its source port (its conntrack entry goes).
    let gone = pods[2].clone();
    let sport = (40_000..40_200)
        .find(|p| {
            net.exec(4, "client", &format!("udpecho -s {p} {vip} 90 x"))
                .is_ok_and(|o| o.starts_with(&format!("{} ", gone.name)))
        })
        .expect("some source port maps to the replica about to go");
    net.ok(1, &["delete", "pod", &gone.name, "--server", &net.addr(1)]);
    net.wait_for(30, "the deleted pod leaves the endpoints", || {
        let live = workload::pods(&net, 1, "echo")?;
        (!live.iter().any(|p| p.name == gone.name)).then_some(())
    });
    let tcp = answers(&net, 4, "client", &http(&vip, 80), 20);
    let udp = answers(&net, 4, "client", &format!("udpecho {vip} 90 x"), 20);
    assert!(
        !tcp.contains(&gone.name) && !udp.iter().any(|a| a.starts_with(&gone.name)),
        "the deleted {} still answered: {tcp:?} {udp:?}",
        gone.name
    );
    assert!(tcp.len() >= 15 && udp.len() >= 15, "too few answers: {tcp:?} {udp:?}");
    let same_port = net.wait_for(10, "the same source port answered by a live replica", || {
        net.exec(4, "client", &format!("udpecho -s {sport} {vip} 90 x")).ok()
    });
    assert!(!same_port.starts_with(&gone.name), "{same_port}");

    // A Service without a selector balances over hand-written Endpoints.
    let target = &pods[0];
    let target_ip = net
        .pods(1, false)
        .unwrap()
        .iter()
        .find(|p| p["pod"]["metadata"]["name"] == target.name.as_str())
        .and_then(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .unwrap();
    net.apply_ok(
        1,
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: manual}}\nspec:\n  ports: [{{port: 80, targetPort: 8080}}]\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: manual}}\nsubsets:\n- addresses: [{{ip: {target_ip}}}]\n  ports: [{{port: 8080}}]\n"
        ),
    );
    let manual: serde_json::Value =
        serde_json::from_str(&net.ok(1, &["get", "svc", "manual", "-o", "json", "--server", &net.addr(1)])).unwrap();
    let manual_ip = manual["spec"]["clusterIP"].as_str().unwrap().to_string();
    let got = net.wait_for(20, "the manual endpoint answers", || {
        net.exec(4, "client", &http(&manual_ip, 80)).ok().filter(|o| !o.trim().is_empty())
    });
    assert_eq!(got.trim(), target.name);

    // The Kubernetes documentation's Service examples apply unchanged.
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes");
    for f in [
        "service.yaml",
        "service-named-port.yaml",
        "service-multi-port.yaml",
        "service-nodeport.yaml",
        "service-externalname.yaml",
        "service-external-ips.yaml",
        "run-my-nginx.yaml",
        "service-without-selector.yaml",
    ] {
        net.apply_ok(1, &std::fs::read_to_string(examples.join(f)).unwrap());
    }
    let table = net.ok(1, &["get", "svc", "-A", "--server", &net.addr(1)]);
    for want in [
        "my-nodeport-service",
        "80:30007/TCP",
        "my.database.example.com",
        "my-multiport-service",
        "80/TCP,443/TCP",
    ] {
        assert!(table.contains(want), "{want:?} not in\n{table}");
    }
    let ep = net.ok(1, &["get", "ep", "my-service", "--server", &net.addr(1)]);
    assert!(ep.contains("10.1.2.3:9376,10.4.5.6:9376"), "{ep}");

    // A node killed -9: its pods leave every node's endpoints within
    // failure detection, and its subnet stays its own while it is Down (a
    // node joining meanwhile gets another).
    let before = endpoint_nodes(&net, 1);
    let victim = ["h2", "h3"]
        .into_iter()
        .find(|h| before.iter().any(|(_, n)| n == h))
        .expect("a replica on h2 or h3");
    let v = victim.trim_start_matches('h').parse::<usize>().unwrap();
    let victim_ips: BTreeSet<String> = before.iter().filter(|(_, n)| n == victim).map(|(ip, _)| ip.clone()).collect();
    let t0 = std::time::Instant::now();
    net.kill9(v);
    net.kill_containers(v);
    for i in [1, 4] {
        net.wait_for(15, &format!("h{i} drops {victim}'s endpoints"), || {
            endpoints(&net, i).is_disjoint(&victim_ips).then_some(())
        });
    }
    println!(
        "{victim}'s endpoints left every Service {:.2} s after its kill -9",
        t0.elapsed().as_secs_f64()
    );
    let token = net.token.clone();
    net.join(5, 1, &token);
    net.start_agent(5);
    let cidrs = net.wait_for(30, "h5 has a subnet", || {
        let c = net.pod_cidrs(1);
        c.iter().any(|(n, s)| n == "h5" && !s.is_empty()).then_some(c)
    });
    let of = |name: &str| cidrs.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone()).unwrap_or_default();
    assert!(!of(victim).is_empty() && of(victim) != of("h5"), "{cidrs:?}");

    // An agent restart changes no rule, route or link, and an established
    // connection through a Service lives through it: a ticker on h4 (the
    // node behind the router, where its traffic is DNATed) streams into a
    // sink on h1 through the sink's Service while h4's agent restarts.
    net.apply_ok(
        1,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: sink, labels: {app: sink}}\nspec:\n  nodeSelector: {kubernetes.io/hostname: h1}\n  containers:\n  - name: c\n    image: localhost/netcheck\n    command: [sh, -c, 'sleep 3600 | nc -l -p 7000 > /tmp/in']\n---\napiVersion: v1\nkind: Service\nmetadata: {name: sink}\nspec:\n  selector: {app: sink}\n  ports: [{port: 7000}]\n",
    );
    let sink: serde_json::Value =
        serde_json::from_str(&net.ok(1, &["get", "svc", "sink", "-o", "json", "--server", &net.addr(1)])).unwrap();
    let sink_ip = sink["spec"]["clusterIP"].as_str().unwrap().to_string();
    workload::wait_ready(&net, 1, "sink", 1, 60, |_| true);
    net.apply_ok(
        1,
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: ticker, labels: {{app: ticker}}}}\nspec:\n  nodeSelector: {{kubernetes.io/hostname: h4}}\n  containers:\n  - name: c\n    image: localhost/netcheck\n    command: [sh, -c, 'while true; do echo tick; sleep 0.2; done | nc {sink_ip} 7000']\n"),
    );
    let lines = |net: &Net| {
        net.exec(1, "sink", "wc -l < /tmp/in")
            .ok()
            .and_then(|o| o.trim().parse::<usize>().ok())
            .unwrap_or(0)
    };
    net.wait_for(60, "the ticker streams into the sink", || (lines(&net) > 5).then_some(()));
    let snapshot = |ns: &str| {
        let run = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", ns])
                .args(args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        (run(&["nft", "list", "ruleset"]), run(&["ip", "route"]), run(&["ip", "-o", "link"]))
    };
    // The docs' my-nginx pods up first (an `image: nginx` pod asks the unreachable
    // registry for up to 5 s before it starts with the node's copy), so
    // the two snapshots differ only by what a restart changes.
    net.wait_for(60, "the my-nginx pods run", || {
        let out = net.ok(1, &["get", "pods", "-A", "-o", "json", "--server", &net.addr(1)]);
        let pods: Vec<serde_json::Value> = serde_json::from_str(&out).ok()?;
        let nginx: Vec<&serde_json::Value> = pods
            .iter()
            .filter(|p| p["pod"]["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("my-nginx")))
            .collect();
        // Its 2 replicas (one on the killed h2 was replaced and stays listed).
        let ready = nginx
            .iter()
            .filter(|p| {
                p["status"]["containerStatuses"]
                    .as_array()
                    .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c["ready"] == true))
            })
            .count();
        (ready >= 2).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    let ns4 = net.host(4).ns.clone();
    let before = snapshot(&ns4);
    net.kill9(4);
    net.start_agent(4);
    net.wait_for(30, "h4's agent answers", || {
        net.run(4, &["get", "nodes", "--server", &net.addr(4)])
            .status
            .success()
            .then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after = snapshot(&ns4);
    // The listing shows chains in the order they were made; the first sync
    // after a start writes them all at once, in name order.
    assert_eq!(blocks(&before.0), blocks(&after.0), "the ruleset changed over a restart");
    assert_eq!(before.1, after.1, "the routes changed over a restart");
    let links = |s: &str| {
        s.lines()
            .filter(|l| l.contains("shoal"))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(links(&before.2), links(&after.2));
    let n0 = lines(&net);
    net.wait_for(10, "the stream goes on after the restart", || (lines(&net) > n0 + 5).then_some(()));
    let restarts = |name: &str| {
        let pods = net.pods(1, false).unwrap();
        let p = pods.iter().find(|p| p["pod"]["metadata"]["name"] == name).cloned().unwrap();
        p["status"]["containerStatuses"][0]["restartCount"].as_u64().unwrap_or(99)
    };
    assert_eq!((restarts("ticker"), restarts("sink")), (0, 0), "the connection broke");

    // Deleting a node removes every link, route and rule it made, there
    // and on its peers.
    let h5_subnet = of("h5");
    let ns5 = net.host(5).ns.clone();
    net.wait_for(20, "h5 has its bridge, tunnel and table", || {
        let (rules, _, links) = snapshot(&ns5);
        let ours = links
            .lines()
            .filter(|l| l.split_whitespace().nth(1).is_some_and(|n| n.starts_with("shoal")))
            .count();
        (rules.contains("masquerade") && ours >= 2).then_some(())
    });
    net.ok(1, &["delete", "node", "h5", "--server", &net.addr(1)]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (rules, routes, links) = snapshot(&ns5);
        let ours = links
            .lines()
            .any(|l| l.split_whitespace().nth(1).is_some_and(|n| n.starts_with("shoal")));
        if rules.trim().is_empty() && !routes.contains("proto 83") && !ours {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "h5's pod network is still there 30 s after its deletion:\n{rules}\n{routes}\n{links}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    net.wait_for(10, "h1 forgets its route to h5's pods", || {
        (!snapshot(&net.host(1).ns).1.contains(&h5_subnet)).then_some(())
    });
}

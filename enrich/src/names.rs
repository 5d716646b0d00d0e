//! Static name tables: IANA protocol keywords, service names of well-known ports, TCP flag
//! labels. Everything here is `&'static`: looking a name up never allocates.

/// IANA "Assigned Internet Protocol Numbers", keyword column in lower case, for 0..=145.
/// Numbers whose registry entry has no keyword (61, 63, 68, 99, 114: "any host internal
/// protocol" and the like) get a short descriptive label instead.
const PROTOCOLS: [&str; 146] = [
    "hopopt",                      // 0
    "icmp",                        // 1
    "igmp",                        // 2
    "ggp",                         // 3
    "ipv4",                        // 4
    "st",                          // 5
    "tcp",                         // 6
    "cbt",                         // 7
    "egp",                         // 8
    "igp",                         // 9
    "bbn-rcc-mon",                 // 10
    "nvp-ii",                      // 11
    "pup",                         // 12
    "argus",                       // 13
    "emcon",                       // 14
    "xnet",                        // 15
    "chaos",                       // 16
    "udp",                         // 17
    "mux",                         // 18
    "dcn-meas",                    // 19
    "hmp",                         // 20
    "prm",                         // 21
    "xns-idp",                     // 22
    "trunk-1",                     // 23
    "trunk-2",                     // 24
    "leaf-1",                      // 25
    "leaf-2",                      // 26
    "rdp",                         // 27
    "irtp",                        // 28
    "iso-tp4",                     // 29
    "netblt",                      // 30
    "mfe-nsp",                     // 31
    "merit-inp",                   // 32
    "dccp",                        // 33
    "3pc",                         // 34
    "idpr",                        // 35
    "xtp",                         // 36
    "ddp",                         // 37
    "idpr-cmtp",                   // 38
    "tp++",                        // 39
    "il",                          // 40
    "ipv6",                        // 41
    "sdrp",                        // 42
    "ipv6-route",                  // 43
    "ipv6-frag",                   // 44
    "idrp",                        // 45
    "rsvp",                        // 46
    "gre",                         // 47
    "dsr",                         // 48
    "bna",                         // 49
    "esp",                         // 50
    "ah",                          // 51
    "i-nlsp",                      // 52
    "swipe",                       // 53
    "narp",                        // 54
    "min-ipv4",                    // 55
    "tlsp",                        // 56
    "skip",                        // 57
    "ipv6-icmp",                   // 58
    "ipv6-nonxt",                  // 59
    "ipv6-opts",                   // 60
    "any-host-internal",           // 61
    "cftp",                        // 62
    "any-local-network",           // 63
    "sat-expak",                   // 64
    "kryptolan",                   // 65
    "rvd",                         // 66
    "ippc",                        // 67
    "any-distributed-file-system", // 68
    "sat-mon",                     // 69
    "visa",                        // 70
    "ipcu",                        // 71
    "cpnx",                        // 72
    "cphb",                        // 73
    "wsn",                         // 74
    "pvp",                         // 75
    "br-sat-mon",                  // 76
    "sun-nd",                      // 77
    "wb-mon",                      // 78
    "wb-expak",                    // 79
    "iso-ip",                      // 80
    "vmtp",                        // 81
    "secure-vmtp",                 // 82
    "vines",                       // 83
    "iptm",                        // 84 (also TTP)
    "nsfnet-igp",                  // 85
    "dgp",                         // 86
    "tcf",                         // 87
    "eigrp",                       // 88
    "ospfigp",                     // 89
    "sprite-rpc",                  // 90
    "larp",                        // 91
    "mtp",                         // 92
    "ax.25",                       // 93
    "ipip",                        // 94
    "micp",                        // 95
    "scc-sp",                      // 96
    "etherip",                     // 97
    "encap",                       // 98
    "any-private-encryption",      // 99
    "gmtp",                        // 100
    "ifmp",                        // 101
    "pnni",                        // 102
    "pim",                         // 103
    "aris",                        // 104
    "scps",                        // 105
    "qnx",                         // 106
    "a/n",                         // 107
    "ipcomp",                      // 108
    "snp",                         // 109
    "compaq-peer",                 // 110
    "ipx-in-ip",                   // 111
    "vrrp",                        // 112
    "pgm",                         // 113
    "any-0-hop",                   // 114
    "l2tp",                        // 115
    "ddx",                         // 116
    "iatp",                        // 117
    "stp",                         // 118
    "srp",                         // 119
    "uti",                         // 120
    "smp",                         // 121
    "sm",                          // 122
    "ptp",                         // 123
    "isis-over-ipv4",              // 124
    "fire",                        // 125
    "crtp",                        // 126
    "crudp",                       // 127
    "sscopmce",                    // 128
    "iplt",                        // 129
    "sps",                         // 130
    "pipe",                        // 131
    "sctp",                        // 132
    "fc",                          // 133
    "rsvp-e2e-ignore",             // 134
    "mobility-header",             // 135
    "udplite",                     // 136
    "mpls-in-ip",                  // 137
    "manet",                       // 138
    "hip",                         // 139
    "shim6",                       // 140
    "wesp",                        // 141
    "rohc",                        // 142
    "ethernet",                    // 143
    "aggfrag",                     // 144
    "nsh",                         // 145
];

/// Protocol numbers.
pub const PROTO_ICMP: u8 = 1;
/// TCP.
pub const PROTO_TCP: u8 = 6;
/// UDP.
pub const PROTO_UDP: u8 = 17;
/// ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
/// SCTP.
pub const PROTO_SCTP: u8 = 132;

/// IANA keyword of an IP protocol number, in lower case (`tcp`, `udp`, `ipv6-icmp`, ...), as
/// ECS `network.transport` wants it. `None` for the unassigned numbers 146..=252.
pub fn protocol_name(proto: u8) -> Option<&'static str> {
    match proto {
        0..=145 => Some(PROTOCOLS[usize::from(proto)]),
        253 | 254 => Some("experimental"),
        255 => Some("reserved"),
        _ => None,
    }
}

const T: u8 = 1;
const U: u8 = 2;
const TU: u8 = T | U;

/// (port, transports the name applies to, name), sorted by port. Names are the IANA service
/// names in lower case, except where the protocol is better known by another (`dns` for
/// `domain`, `smb` for `microsoft-ds`, `netflow` for 2055): they end up in ECS
/// `network.protocol`, whose examples are `http`, `dns`, `ssh`. SCTP uses the TCP names.
static SERVICES: &[(u16, u8, &str)] = &[
    (7, TU, "echo"),
    (9, TU, "discard"),
    (13, TU, "daytime"),
    (19, TU, "chargen"),
    (20, T, "ftp-data"),
    (21, T, "ftp"),
    (22, T, "ssh"),
    (23, T, "telnet"),
    (25, T, "smtp"),
    (37, TU, "time"),
    (43, T, "whois"),
    (49, TU, "tacacs"),
    (53, TU, "dns"),
    (67, U, "dhcp"),
    (68, U, "dhcp-client"),
    (69, U, "tftp"),
    (70, T, "gopher"),
    (79, T, "finger"),
    (80, TU, "http"),
    (88, TU, "kerberos"),
    (102, T, "iso-tsap"),
    (110, T, "pop3"),
    (111, TU, "sunrpc"),
    (113, T, "ident"),
    (119, T, "nntp"),
    (123, U, "ntp"),
    (135, TU, "msrpc"),
    (137, U, "netbios-ns"),
    (138, U, "netbios-dgm"),
    (139, T, "netbios-ssn"),
    (143, T, "imap"),
    (161, U, "snmp"),
    (162, U, "snmp-trap"),
    (177, U, "xdmcp"),
    (179, T, "bgp"),
    (194, T, "irc"),
    (389, TU, "ldap"),
    (427, TU, "svrloc"),
    (443, TU, "https"),
    (445, T, "smb"),
    (464, TU, "kpasswd"),
    (465, T, "smtps"),
    (500, U, "isakmp"),
    (502, T, "modbus"),
    (512, T, "exec"),
    (512, U, "biff"),
    (513, T, "login"),
    (513, U, "who"),
    (514, T, "shell"),
    (514, U, "syslog"),
    (515, T, "printer"),
    (520, U, "rip"),
    (521, U, "ripng"),
    (543, T, "klogin"),
    (544, T, "kshell"),
    (546, U, "dhcpv6-client"),
    (547, U, "dhcpv6-server"),
    (548, T, "afp"),
    (554, TU, "rtsp"),
    (563, T, "nntps"),
    (587, T, "submission"),
    (623, U, "ipmi"),
    (631, TU, "ipp"),
    (636, T, "ldaps"),
    (639, TU, "msdp"),
    (646, TU, "ldp"),
    (853, TU, "dns-over-tls"),
    (860, T, "iscsi"),
    (873, T, "rsync"),
    (989, T, "ftps-data"),
    (990, T, "ftps"),
    (992, T, "telnets"),
    (993, T, "imaps"),
    (995, T, "pop3s"),
    (1080, T, "socks"),
    (1194, TU, "openvpn"),
    (1433, T, "mssql"),
    (1434, U, "mssql-monitor"),
    (1521, T, "oracle"),
    (1701, U, "l2tp"),
    (1723, T, "pptp"),
    (1812, U, "radius"),
    (1813, U, "radius-acct"),
    (1883, T, "mqtt"),
    (1900, U, "ssdp"),
    (1985, U, "hsrp"),
    (2049, TU, "nfs"),
    (2055, U, "netflow"),
    (2123, U, "gtp-c"),
    (2152, U, "gtp-u"),
    (2181, T, "zookeeper"),
    (2375, T, "docker"),
    (2376, T, "docker-s"),
    (2379, T, "etcd-client"),
    (2380, T, "etcd-server"),
    (3128, T, "http-proxy"),
    (3260, T, "iscsi"),
    (3268, T, "msft-gc"),
    (3269, T, "msft-gc-ssl"),
    (3306, T, "mysql"),
    (3389, TU, "rdp"),
    (3478, TU, "stun"),
    (3784, U, "bfd-control"),
    (3785, U, "bfd-echo"),
    (4500, U, "ipsec-nat-t"),
    (4739, TU, "ipfix"),
    (4740, TU, "ipfixs"),
    (4789, U, "vxlan"),
    (5060, TU, "sip"),
    (5061, T, "sips"),
    (5222, T, "xmpp-client"),
    (5269, T, "xmpp-server"),
    (5353, U, "mdns"),
    (5355, U, "llmnr"),
    (5432, T, "postgresql"),
    (5671, T, "amqps"),
    (5672, T, "amqp"),
    (5683, U, "coap"),
    (5900, T, "vnc"),
    (5985, T, "wsman"),
    (5986, T, "wsmans"),
    (6081, U, "geneve"),
    (6343, U, "sflow"),
    (6379, T, "redis"),
    (6443, T, "kubernetes-api"),
    (6514, T, "syslog-tls"),
    (6653, T, "openflow"),
    (6667, T, "irc"),
    (6881, TU, "bittorrent"),
    (8080, T, "http-alt"),
    (8443, T, "https-alt"),
    (8883, T, "secure-mqtt"),
    (9092, T, "kafka"),
    (9100, T, "jetdirect"),
    (9200, T, "elasticsearch"),
    (9418, T, "git"),
    (9995, U, "netflow"),
    (9996, U, "netflow"),
    (10050, T, "zabbix-agent"),
    (10051, T, "zabbix-trapper"),
    (11211, TU, "memcache"),
    (27017, T, "mongodb"),
];

/// Highest port in [`SERVICES`]: ephemeral ports above it (Linux 32768-60999, Windows
/// 49152-65535) are answered with one comparison.
const MAX_SERVICE_PORT: u16 = 27017;

/// Service name of a port for a transport protocol (TCP, UDP, SCTP; others have no ports).
#[inline]
pub fn service_name(proto: u8, port: u16) -> Option<&'static str> {
    if port > MAX_SERVICE_PORT {
        return None;
    }
    let want = match proto {
        PROTO_TCP | PROTO_SCTP => T,
        PROTO_UDP => U,
        _ => return None,
    };
    let start = SERVICES.partition_point(|e| e.0 < port);
    SERVICES[start..]
        .iter()
        .take_while(|e| e.0 == port)
        .find(|e| e.1 & want != 0)
        .map(|e| e.2)
}

/// Whether a port counts as a server port for the client/server heuristic: below 1024 (the
/// IANA system ports) or named in the service table for that protocol.
pub fn is_well_known(proto: u8, port: u16) -> bool {
    port < 1024 || service_name(proto, port).is_some()
}

/// TCP flag names in bit order (RFC 9293 §3.1; NS is RFC 3540's nonce bit, 0x100).
pub const TCP_FLAG_NAMES: [&str; 9] =
    ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"];

struct FlagTable {
    names: [[&'static str; 9]; 512],
    lens: [u8; 512],
}

const fn build_flag_table() -> FlagTable {
    let mut names = [[""; 9]; 512];
    let mut lens = [0u8; 512];
    let mut v = 0;
    while v < 512 {
        let mut n = 0;
        let mut bit = 0;
        while bit < 9 {
            if v & (1 << bit) != 0 {
                names[v][n] = TCP_FLAG_NAMES[bit];
                n += 1;
            }
            bit += 1;
        }
        lens[v] = n as u8;
        v += 1;
    }
    FlagTable { names, lens }
}

/// Every combination of the nine flags, computed at compile time.
static FLAGS: FlagTable = build_flag_table();

/// Names of the TCP flags set in `flags` (tcpControlBits, IE 6), in bit order: FIN SYN RST
/// PSH ACK URG ECE CWR NS. Bits above NS (reserved, or the data-offset nibble some exporters
/// leave in the 16-bit field) are ignored.
pub fn tcp_flag_names(flags: u16) -> &'static [&'static str] {
    let i = usize::from(flags & 0x1ff);
    &FLAGS.names[i][..usize::from(FLAGS.lens[i])]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_keywords() {
        assert_eq!(protocol_name(0), Some("hopopt"));
        assert_eq!(protocol_name(1), Some("icmp"));
        assert_eq!(protocol_name(6), Some("tcp"));
        assert_eq!(protocol_name(17), Some("udp"));
        assert_eq!(protocol_name(41), Some("ipv6"));
        assert_eq!(protocol_name(47), Some("gre"));
        assert_eq!(protocol_name(50), Some("esp"));
        assert_eq!(protocol_name(58), Some("ipv6-icmp"));
        assert_eq!(protocol_name(89), Some("ospfigp"));
        assert_eq!(protocol_name(103), Some("pim"));
        assert_eq!(protocol_name(112), Some("vrrp"));
        assert_eq!(protocol_name(132), Some("sctp"));
        assert_eq!(protocol_name(136), Some("udplite"));
        assert_eq!(protocol_name(143), Some("ethernet"));
        assert_eq!(protocol_name(145), Some("nsh"));
        assert_eq!(protocol_name(146), None);
        assert_eq!(protocol_name(252), None);
        assert_eq!(protocol_name(253), Some("experimental"));
        assert_eq!(protocol_name(255), Some("reserved"));
        for p in 0..=145u8 {
            let n = protocol_name(p).expect("assigned");
            assert!(!n.is_empty() && n == n.to_lowercase(), "{p}: {n}");
        }
    }

    #[test]
    fn services() {
        assert!(SERVICES.windows(2).all(|w| w[0].0 <= w[1].0), "sorted");
        assert_eq!(SERVICES.last().map(|e| e.0), Some(MAX_SERVICE_PORT));
        assert!(SERVICES.len() >= 100, "{}", SERVICES.len());
        assert_eq!(service_name(PROTO_TCP, 22), Some("ssh"));
        assert_eq!(service_name(PROTO_UDP, 53), Some("dns"));
        assert_eq!(service_name(PROTO_TCP, 53), Some("dns"));
        assert_eq!(service_name(PROTO_TCP, 443), Some("https"));
        assert_eq!(service_name(PROTO_UDP, 123), Some("ntp"));
        assert_eq!(service_name(PROTO_TCP, 123), None);
        assert_eq!(service_name(PROTO_TCP, 514), Some("shell"));
        assert_eq!(service_name(PROTO_UDP, 514), Some("syslog"));
        assert_eq!(service_name(PROTO_UDP, 2055), Some("netflow"));
        assert_eq!(service_name(PROTO_UDP, 4739), Some("ipfix"));
        assert_eq!(service_name(PROTO_UDP, 6343), Some("sflow"));
        assert_eq!(service_name(PROTO_TCP, 8080), Some("http-alt"));
        assert_eq!(service_name(PROTO_SCTP, 80), Some("http"));
        assert_eq!(service_name(PROTO_ICMP, 80), None);
        assert_eq!(service_name(PROTO_TCP, 40000), None);
        assert!(is_well_known(PROTO_TCP, 1023));
        assert!(is_well_known(PROTO_TCP, 5432));
        assert!(!is_well_known(PROTO_TCP, 5433));
    }

    #[test]
    fn flags() {
        assert!(tcp_flag_names(0).is_empty());
        assert_eq!(tcp_flag_names(0x02), ["SYN"]);
        assert_eq!(tcp_flag_names(0x12), ["SYN", "ACK"]);
        assert_eq!(tcp_flag_names(0x1b), ["FIN", "SYN", "PSH", "ACK"]);
        assert_eq!(tcp_flag_names(0x1ff), TCP_FLAG_NAMES);
        assert_eq!(
            tcp_flag_names(0x5012),
            ["SYN", "ACK"],
            "data offset bits ignored"
        );
        for v in 0..512u16 {
            let names = tcp_flag_names(v);
            assert_eq!(names.len(), v.count_ones() as usize);
            let back = names.iter().fold(0u16, |acc, n| {
                let bit = TCP_FLAG_NAMES.iter().position(|x| x == n).expect("known");
                acc | 1 << bit
            });
            assert_eq!(back, v);
        }
    }
}

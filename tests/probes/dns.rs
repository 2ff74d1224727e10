//! The DNS probe against a small authoritative server on loopback (UDP and TCP on one port),
//! answering from an in-memory zone under `svc.test.`:
//! - `svc.test`: two A, one AAAA, MX, TXT (two strings), NS and SOA records;
//! - `www.svc.test`: a CNAME to `svc.test`;
//! - `wrong.svc.test`: an A record other than the one the assets expect;
//! - `broken.svc.test`: SERVFAIL; `silent.svc.test`: never answered;
//! - `big.svc.test`: truncated over UDP, its TXT only over TCP;
//! - any other name: NXDOMAIN.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use parking_lot::Mutex;
use serde_json::{Value, json};
use statusd::{ProbeContext, ProbeResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use super::common::{asset, probe_once, problems};

const TTL: u32 = 300;

/// A running test server; its tasks end with it.
struct DnsServer {
    port: u16,
    /// Queries received, by lower-case name without the trailing dot.
    queries: Arc<Mutex<HashMap<String, usize>>>,
    /// The address each query came from (over TCP, each connection), in order.
    peers: Arc<Mutex<Vec<IpAddr>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl DnsServer {
    async fn start() -> DnsServer {
        // The TCP port must be the UDP one; another process may hold it, so try a few.
        for _ in 0..20 {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
            let port = udp.local_addr().expect("UDP address").port();
            let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await else {
                continue;
            };
            let queries = Arc::new(Mutex::new(HashMap::new()));
            let peers = Arc::new(Mutex::new(Vec::new()));
            let tasks = vec![
                tokio::spawn(serve_udp(udp, queries.clone(), peers.clone())),
                tokio::spawn(serve_tcp(tcp, queries.clone(), peers.clone())),
            ];
            return DnsServer { port, queries, peers, tasks };
        }
        panic!("no port free for both UDP and TCP");
    }

    fn udp(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn tcp(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn queries_for(&self, name: &str) -> usize {
        self.queries.lock().get(name).copied().unwrap_or(0)
    }
}

async fn serve_udp(socket: UdpSocket, queries: Arc<Mutex<HashMap<String, usize>>>, peers: Arc<Mutex<Vec<IpAddr>>>) {
    let mut buffer = vec![0u8; 4096];
    loop {
        let Ok((length, peer)) = socket.recv_from(&mut buffer).await else {
            return;
        };
        peers.lock().push(peer.ip());
        if let Some(reply) = answer(&buffer[..length], false, &queries) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, queries: Arc<Mutex<HashMap<String, usize>>>, peers: Arc<Mutex<Vec<IpAddr>>>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            return;
        };
        peers.lock().push(peer.ip());
        tokio::spawn(serve_tcp_connection(stream, queries.clone()));
    }
}

/// DNS over TCP: each message behind its two-byte length, several per connection.
async fn serve_tcp_connection(mut stream: TcpStream, queries: Arc<Mutex<HashMap<String, usize>>>) {
    loop {
        let Ok(length) = stream.read_u16().await else {
            return;
        };
        let mut request = vec![0u8; usize::from(length)];
        if stream.read_exact(&mut request).await.is_err() {
            return;
        }
        if let Some(reply) = answer(&request, true, &queries) {
            let Ok(length) = u16::try_from(reply.len()) else {
                return;
            };
            if stream.write_u16(length).await.is_err() || stream.write_all(&reply).await.is_err() {
                return;
            }
        }
    }
}

fn name(text: &str) -> Name {
    Name::from_str(text).expect("a valid name")
}

fn soa() -> Record {
    Record::from_rdata(
        name("svc.test."),
        TTL,
        RData::SOA(SOA::new(name("ns1.svc.test."), name("hostmaster.svc.test."), 2024010101, 3600, 600, 86400, 300)),
    )
}

/// The zone's records for one name, or None when the name does not exist.
fn records(owner: &str, over_tcp: bool) -> Option<Vec<RData>> {
    let records = match owner {
        "svc.test" => vec![
            RData::A(A(Ipv4Addr::new(10, 0, 0, 1))),
            RData::A(A(Ipv4Addr::new(10, 0, 0, 2))),
            RData::AAAA(AAAA(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))),
            RData::MX(MX::new(10, name("mail.svc.test."))),
            RData::TXT(TXT::new(vec!["v=spf1 ".into(), "-all".into()])),
            RData::NS(NS(name("ns1.svc.test."))),
            soa().data,
        ],
        "www.svc.test" => vec![RData::CNAME(CNAME(name("svc.test.")))],
        "wrong.svc.test" => vec![RData::A(A(Ipv4Addr::new(192, 0, 2, 66)))],
        "big.svc.test" if over_tcp => vec![RData::TXT(TXT::new(vec!["only over TCP".into()]))],
        "big.svc.test" => Vec::new(),
        _ => return None,
    };
    Some(records)
}

/// The reply to one request; None to stay silent.
fn answer(request: &[u8], over_tcp: bool, queries: &Mutex<HashMap<String, usize>>) -> Option<Vec<u8>> {
    let request = Message::from_vec(request).ok()?;
    let query = request.queries.first()?.clone();
    let owner = query.name().to_string().trim_end_matches('.').to_lowercase();
    *queries.lock().entry(owner.clone()).or_insert(0) += 1;

    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.add_query(query.clone());
    match owner.as_str() {
        "silent.svc.test" => return None,
        "broken.svc.test" => response.metadata.response_code = ResponseCode::ServFail,
        "big.svc.test" if !over_tcp => response.metadata.truncation = true,
        _ => match records(&owner, over_tcp) {
            None => {
                response.metadata.response_code = ResponseCode::NXDomain;
                response.add_authority(soa());
            }
            Some(data) => {
                let wanted = query.query_type();
                let mut found = false;
                for rdata in data {
                    let record_type = rdata.record_type();
                    if record_type == wanted || record_type == RecordType::CNAME {
                        found = true;
                        let target = match &rdata {
                            RData::CNAME(CNAME(target)) if wanted != RecordType::CNAME => Some(target.clone()),
                            _ => None,
                        };
                        response.add_answer(Record::from_rdata(query.name().clone(), TTL, rdata));
                        // Like a real server, an alias comes with its target's records.
                        if let Some(target) = target {
                            let target_owner = target.to_string().trim_end_matches('.').to_lowercase();
                            for target_data in records(&target_owner, over_tcp).unwrap_or_default() {
                                if target_data.record_type() == wanted {
                                    response.add_answer(Record::from_rdata(target.clone(), TTL, target_data));
                                }
                            }
                        }
                    }
                }
                if !found {
                    response.add_authority(soa());
                }
            }
        },
    }
    response.to_vec().ok()
}

fn dns_asset(server: &DnsServer, address: &str, settings: Value) -> Value {
    let mut fields = json!({"assetType": "dns", "address": address, "nameserver": server.udp()});
    for (key, value) in settings.as_object().expect("an object") {
        fields[key] = value.clone();
    }
    fields
}

async fn probe(server: &DnsServer, address: &str, settings: Value) -> ProbeResult {
    probe_once(dns_asset(server, address, settings)).await
}

#[tokio::test]
async fn every_record_type_succeeds_when_its_expected_values_are_answered() {
    let server = DnsServer::start().await;
    let cases = [
        ("A", json!(["10.0.0.1", "10.0.0.2"])),
        ("AAAA", json!(["fd00::1"])),
        ("CNAME", json!(["SVC.test."])),
        ("MX", json!(["10 mail.svc.test"])),
        ("MX", json!(["mail.svc.test."])),
        ("TXT", json!(["v=spf1 -all"])),
        ("NS", json!(["ns1.svc.test"])),
        ("SOA", json!(["ns1.svc.test. hostmaster.svc.test. 2024010101 3600 600 86400 300"])),
        ("SOA", json!(["ns1.svc.test"])),
    ];
    for (record_type, expected) in cases {
        let address = if record_type == "CNAME" { "www.svc.test" } else { "svc.test" };
        let result = probe(&server, address, json!({"recordType": record_type, "expectedValues": expected})).await;
        assert!(result.success, "{record_type} {expected}: {:?}", result.message);
        assert_eq!(result.message, None);
    }
}

#[tokio::test]
async fn an_a_query_follows_a_cname_to_the_address() {
    let server = DnsServer::start().await;
    let result = probe(&server, "www.svc.test", json!({"expectedValues": ["10.0.0.2"]})).await;
    assert!(result.success, "{:?}", result.message);
}

#[tokio::test]
async fn the_default_is_an_a_query_that_only_needs_noerror() {
    let server = DnsServer::start().await;
    let result = probe(&server, "svc.test", json!({})).await;
    assert!(result.success, "{:?}", result.message);
    // NOERROR without records of the type is still NOERROR.
    let result = probe(&server, "wrong.svc.test", json!({"recordType": "MX"})).await;
    assert!(result.success, "{:?}", result.message);
}

#[tokio::test]
async fn nxdomain_fails_by_default_and_succeeds_when_expected() {
    let server = DnsServer::start().await;
    let result = probe(&server, "missing.svc.test", json!({})).await;
    assert!(!result.success);
    assert_eq!(result.message.as_deref(), Some("NXDOMAIN (expected NOERROR)"));

    let result = probe(&server, "missing.svc.test", json!({"expectedRcode": "NXDOMAIN"})).await;
    assert!(result.success, "{:?}", result.message);

    let result = probe(&server, "svc.test", json!({"expectedRcode": "NXDOMAIN"})).await;
    assert_eq!(result.message.as_deref(), Some("NOERROR (expected NXDOMAIN)"));
}

#[tokio::test]
async fn servfail_fails_unless_expected() {
    let server = DnsServer::start().await;
    let result = probe(&server, "broken.svc.test", json!({})).await;
    assert!(!result.success);
    assert_eq!(result.message.as_deref(), Some("SERVFAIL (expected NOERROR)"));

    let result = probe(&server, "broken.svc.test", json!({"expectedRcode": "SERVFAIL"})).await;
    assert!(result.success, "{:?}", result.message);
}

#[tokio::test]
async fn a_wrong_answer_names_what_was_answered_and_what_is_missing() {
    let server = DnsServer::start().await;
    let result = probe(&server, "wrong.svc.test", json!({"expectedValues": ["10.0.0.1"]})).await;
    assert!(!result.success);
    assert_eq!(result.message.as_deref(), Some("answers [192.0.2.66] do not include 10.0.0.1"));

    let result = probe(&server, "svc.test", json!({"expectedValues": ["10.0.0.1", "10.0.0.3"]})).await;
    assert_eq!(result.message.as_deref(), Some("answers [10.0.0.1, 10.0.0.2] do not include 10.0.0.3"));

    let result = probe(&server, "svc.test", json!({"recordType": "MX", "expectedValues": ["20 mail.svc.test"]})).await;
    assert_eq!(result.message.as_deref(), Some("answers [10 mail.svc.test] do not include 20 mail.svc.test"));

    let result = probe(&server, "svc.test", json!({"recordType": "TXT", "expectedValues": ["V=SPF1 -ALL"]})).await;
    assert_eq!(result.message.as_deref(), Some("answers [v=spf1 -all] do not include V=SPF1 -ALL"));

    let result = probe(&server, "wrong.svc.test", json!({"recordType": "AAAA", "expectedValues": ["fd00::1"]})).await;
    assert_eq!(result.message.as_deref(), Some("no AAAA records (expected fd00::1)"));
}

#[tokio::test]
async fn a_silent_server_is_a_timeout() {
    let server = DnsServer::start().await;
    let result = probe(&server, "silent.svc.test", json!({"timeoutSeconds": 1})).await;
    assert!(!result.success);
    assert_eq!(result.message.as_deref(), Some("timeout after 1s"));
    assert!(server.queries_for("silent.svc.test") >= 1, "the query never reached the server");
}

#[tokio::test]
async fn a_refused_tcp_connection_says_so() {
    // A port just freed: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("address").port();
    let result = probe_once(json!({
        "assetType": "dns",
        "address": "svc.test",
        "nameserver": format!("tcp://127.0.0.1:{port}"),
    }))
    .await;
    assert!(!result.success);
    assert_eq!(result.message, Some(format!("no answer from tcp://127.0.0.1:{port} (cannot connect)")));
}

#[tokio::test]
async fn a_tcp_nameserver_is_asked_over_tcp() {
    let server = DnsServer::start().await;
    // big.svc.test has its TXT record only over TCP.
    let result = probe(
        &server,
        "big.svc.test",
        json!({"nameserver": server.tcp(), "recordType": "TXT", "expectedValues": ["only over TCP"]}),
    )
    .await;
    assert!(result.success, "{:?}", result.message);
    let result = probe(&server, "svc.test", json!({"nameserver": server.tcp(), "expectedValues": ["10.0.0.1"]})).await;
    assert!(result.success, "{:?}", result.message);
}

#[tokio::test]
async fn a_truncated_udp_answer_is_asked_again_over_tcp() {
    let server = DnsServer::start().await;
    let nameserver = format!("udp://{}", server.udp());
    let result = probe(
        &server,
        "big.svc.test",
        json!({"nameserver": nameserver, "recordType": "TXT", "expectedValues": ["only over TCP"]}),
    )
    .await;
    assert!(result.success, "{:?}", result.message);
}

#[tokio::test]
async fn without_a_nameserver_the_system_configuration_is_used() {
    if !std::path::Path::new("/etc/resolv.conf").exists() {
        eprintln!("skipped: no /etc/resolv.conf");
        return;
    }
    // localhost is answered by the resolver itself (RFC 6761), so this needs no network.
    let result = probe_once(json!({"assetType": "dns", "address": "localhost", "expectedValues": ["127.0.0.1"]})).await;
    assert!(result.success, "{:?}", result.message);
}

#[tokio::test]
async fn every_probe_asks_the_server_again() {
    let server = DnsServer::start().await;
    let asset = asset(dns_asset(&server, "svc.test", json!({"expectedValues": ["10.0.0.1"]})));
    let context = ProbeContext::new().expect("probe clients");
    for _ in 0..3 {
        let result = asset.check(&context).await;
        assert!(result.success, "{:?}", result.message);
    }
    assert_eq!(server.queries_for("svc.test"), 3, "a cached answer was used");
}

/// `[probes] source_address`: queries leave from that address, over UDP and over TCP (the
/// server records where each came from; it answers only after receiving, so the record is
/// there once the probe has its answer), and a name server of the other family is a clear
/// failure, as a TCP target is.
#[tokio::test]
async fn queries_are_sent_from_the_source_address() {
    let server = DnsServer::start().await;
    let source: IpAddr = "127.0.0.2".parse().expect("an address");
    let context = ProbeContext::sent_from(Some(source)).expect("probe clients");
    for nameserver in [server.udp(), server.tcp()] {
        let settings = json!({"nameserver": nameserver, "expectedValues": ["10.0.0.1"]});
        let result = asset(dns_asset(&server, "svc.test", settings)).check(&context).await;
        assert!(result.success, "{nameserver}: {:?}", result.message);
    }
    let peers = server.peers.lock().clone();
    assert_eq!(peers, [source, source], "queries came from {peers:?}");

    let context = ProbeContext::sent_from(Some("::1".parse().expect("an address"))).expect("probe clients");
    let result = asset(dns_asset(&server, "svc.test", json!({}))).check(&context).await;
    assert!(!result.success);
    assert_eq!(
        result.message,
        Some(format!("cannot query {}: no IPv6 address to reach from the source address ::1", server.udp()))
    );
    assert_eq!(server.peers.lock().len(), 2, "a query was sent");
}

#[tokio::test]
async fn conditions_see_the_response_code_the_address_and_the_answers() {
    let server = DnsServer::start().await;
    let conditions = json!(["[DNS_RCODE] == NOERROR", "[IP] == 10.0.0.1"]);
    let result = probe(&server, "svc.test", json!({"conditions": conditions})).await;
    assert!(result.success, "{:?}", result.message);

    // The failures quote what the probe saw: the first address, the answers one per line, the rcode.
    let seen = |result: ProbeResult| {
        assert!(!result.success);
        result.message.unwrap_or_default()
    };
    let ip = seen(probe(&server, "svc.test", json!({"conditions": ["[IP] == 10.0.0.9"]})).await);
    assert!(ip.contains("10.0.0.1"), "{ip}");
    let body = seen(probe(&server, "svc.test", json!({"conditions": ["[BODY] == 10.0.0.1"]})).await);
    assert!(body.contains(r"10.0.0.1\n10.0.0.2"), "{body}");
    let rcode = probe(
        &server,
        "missing.svc.test",
        json!({"expectedRcode": "NXDOMAIN", "conditions": ["[DNS_RCODE] == NOERROR"]}),
    )
    .await;
    let rcode = seen(rcode);
    assert!(rcode.contains("NXDOMAIN"), "{rcode}");
}

#[test]
fn settings_are_validated_at_load() {
    let base = json!({"assetType": "dns", "address": "svc.test"});
    let with = |settings: Value| {
        let mut fields = base.clone();
        for (key, value) in settings.as_object().expect("an object") {
            fields[key] = value.clone();
        }
        problems(fields)
    };

    assert_eq!(with(json!({})), Vec::<String>::new());
    assert_eq!(
        with(json!({"recordType": "AAA"})),
        vec!["assets[0].recordType: \"AAA\" is not a record type; one of: A, AAAA, CNAME, MX, TXT, NS, SOA"]
    );
    assert_eq!(
        with(json!({"recordType": "mx"})),
        vec![
            "assets[0].recordType: \"mx\" is not a record type (write it in capitals: MX); one of: A, AAAA, CNAME, MX, TXT, NS, SOA"
        ]
    );
    let bad_rcode = with(json!({"expectedRcode": "NOTHING", "expectedValues": ["10.0.0.1"]}));
    assert_eq!(
        bad_rcode,
        vec![
            "assets[0].expectedRcode: \"NOTHING\" is not a response code; one of: NOERROR, FORMERR, SERVFAIL, \
             NXDOMAIN, NOTIMP, REFUSED, YXDOMAIN, YXRRSET, NXRRSET, NOTAUTH, NOTZONE, BADVERS, BADSIG, BADKEY, \
             BADTIME, BADMODE, BADNAME, BADALG, BADTRUNC, BADCOOKIE"
        ]
    );
    // Every problem of the asset at once, each under its own path.
    let all = with(json!({"address": "", "recordType": "B", "nameserver": "ns.example.com"}));
    let paths: Vec<&str> = all.iter().filter_map(|p| p.split_once(':').map(|(path, _)| path)).collect();
    assert_eq!(paths, ["assets[0].address", "assets[0].recordType", "assets[0].nameserver"], "{all:?}");

    let by_name = with(json!({"nameserver": "dns.google"}));
    assert_eq!(by_name.len(), 1, "{by_name:?}");
    assert!(by_name[0].starts_with("assets[0].nameserver: \"dns.google\" is not an IP address"), "{by_name:?}");
    assert!(by_name[0].contains("would need DNS"), "{by_name:?}");
    assert!(with(json!({"nameserver": "10.0.0.1:70000"}))[0].contains("not a port"));
    assert!(with(json!({"nameserver": "https://10.0.0.1"}))[0].contains("unsupported protocol"));
    assert_eq!(with(json!({"nameserver": "tcp://[::1]:5353"})), Vec::<String>::new());

    let expected_values = with(json!({"expectedValues": ["mail.svc.test", ""]}));
    assert_eq!(
        expected_values,
        vec![
            "assets[0].expectedValues[0]: \"mail.svc.test\" is not an IPv4 address (recordType is A)",
            "assets[0].expectedValues[1]: must not be empty",
        ]
    );
    assert_eq!(
        with(json!({"expectedRcode": "NXDOMAIN", "expectedValues": ["10.0.0.1"]})),
        vec!["assets[0].expectedValues: only make sense with expectedRcode NOERROR: other responses carry no answers"]
    );
}

#[test]
fn the_address_must_be_a_bare_host_name() {
    let address_problem = |address: &str| {
        let found = problems(json!({"assetType": "dns", "address": address}));
        assert_eq!(found.len(), 1, "{address:?}: {found:?}");
        assert!(found[0].starts_with("assets[0].address: "), "{found:?}");
        found[0].clone()
    };
    assert!(address_problem("").contains("must not be empty"));
    assert!(address_problem("https://svc.test").contains("not a host name"));
    assert!(address_problem("svc.test/health").contains("not a host name"));
    assert!(address_problem("svc.test:53").contains("has a port"));
    assert!(address_problem("10.0.0.1").contains("is an IP address"));
    assert!(address_problem("svc test").contains("space"));
    assert_eq!(problems(json!({"assetType": "dns", "address": "svc.test."})), Vec::<String>::new());
}

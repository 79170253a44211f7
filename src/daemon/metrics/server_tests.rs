//! The metrics listener over real sockets on loopback: a scrape parsed strictly, and
//! clients that misbehave, after each of which a scrape still gets its answer.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::*;
use crate::daemon::metrics::tests::{check_known, known};

/// Stands in for the daemon's loop: answers every scrape with the known state.
fn answer_scrapes(mut rx: mpsc::Receiver<Inbound>) {
    tokio::spawn(async move {
        let state = known();
        while let Some(message) = rx.recv().await {
            if let Inbound::Metrics { reply } = message {
                let _ = reply.send(Ok(state.render()));
            }
        }
    });
}

/// Listens on an ephemeral loopback port.
async fn start(limits: Limits) -> (SocketAddr, Arc<Counters>) {
    // Bound first to learn a free port, then handed over by address.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = probe.local_addr().unwrap();
    drop(probe);
    let (tx, rx) = mpsc::channel(16);
    answer_scrapes(rx);
    let counters = listen(&Address::Tcp(address), tx, limits).unwrap();
    (address, counters)
}

/// Sends `request` and reads the whole answer (5 s at most): status line, headers, body.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> (String, String) {
    stream.write_all(request).await.unwrap();
    read_answer(stream).await
}

async fn read_answer(stream: &mut (impl AsyncRead + Unpin)) -> (String, String) {
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let length: usize = (head.lines())
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "{head}");
    (head.to_owned(), body.to_owned())
}

async fn scrape(address: SocketAddr) -> (String, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n";
    exchange(&mut stream, request).await
}

async fn assert_scrape_works(address: SocketAddr) {
    let (head, body) = scrape(address).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("Content-Type: {CONTENT_TYPE}")),
        "{head}"
    );
    check_known(&body);
}

#[tokio::test]
async fn a_scrape_over_tcp_reads_the_known_state() {
    let (address, _) = start(Limits::default()).await;
    assert_scrape_works(address).await;
    // HEAD: the same head, no body.
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"HEAD /metrics HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_scrape_over_a_unix_socket_reads_the_known_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.sock");
    let (tx, rx) = mpsc::channel(16);
    answer_scrapes(rx);
    listen(&Address::Unix(path.clone()), tx, Limits::default()).unwrap();
    let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    stream
        .write_all(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = read_answer(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    check_known(&body);
}

#[tokio::test]
async fn other_paths_methods_and_garbage_get_their_status() {
    let (address, _) = start(Limits::default()).await;
    for (request, status) in [
        (&b"GET / HTTP/1.1\r\n\r\n"[..], "404 Not Found"),
        (b"POST /metrics HTTP/1.1\r\n\r\n", "405 Method Not Allowed"),
        (b"GET /metrics\r\n\r\n", "400 Bad Request"),
        (b"\xff\xfe /metrics HTTP/1.1\r\n\r\n", "400 Bad Request"),
        (b"GET metrics HTTP/1.1\r\n\r\n", "400 Bad Request"),
    ] {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let (head, _) = exchange(&mut stream, request).await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{request:?}: {head}"
        );
    }
    assert_scrape_works(address).await;
}

#[tokio::test]
async fn a_slow_client_times_out_and_others_are_served_meanwhile() {
    let limits = Limits {
        request_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (address, _) = start(limits).await;
    let mut slow = TcpStream::connect(address).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost:")
        .await
        .unwrap();
    assert_scrape_works(address).await;
    let (head, body) = read_answer(&mut slow).await;
    assert!(head.starts_with("HTTP/1.1 408 Request Timeout"), "{head}");
    assert_eq!(body, "no request within 0.5 s\n");
}

#[tokio::test]
async fn a_huge_request_line_is_refused_without_being_read_to_its_end() {
    let (address, _) = start(Limits::default()).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let mut huge = b"GET /".to_vec();
    huge.resize(1 << 20, b'a');
    // The server answers after 8 KiB and closes; the rest of the megabyte may not be taken.
    let _ = stream.write_all(&huge).await;
    let (head, _) = read_answer(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    assert_scrape_works(address).await;
}

#[tokio::test]
async fn clients_beyond_the_cap_get_503_at_once_and_scrapes_resume() {
    let limits = Limits {
        clients: 4,
        request_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let (address, counters) = start(limits).await;
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(TcpStream::connect(address).await.unwrap());
    }
    // Answered before it sends anything: at once.
    let mut refused = TcpStream::connect(address).await.unwrap();
    let (head, _) = read_answer(&mut refused).await;
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for stream in &mut idle {
        let (head, _) = read_answer(stream).await;
        let status = head.lines().next().unwrap().to_owned();
        *statuses.entry(status).or_default() += 1;
    }
    let expected = [
        ("HTTP/1.1 408 Request Timeout".to_string(), 4),
        ("HTTP/1.1 503 Service Unavailable".to_string(), 46),
    ];
    assert_eq!(statuses, expected.into());
    assert_eq!(counters.busy.load(std::sync::atomic::Ordering::Relaxed), 47);
    assert_scrape_works(address).await;
}

#[tokio::test]
async fn an_unreadable_state_is_a_503_not_an_empty_scrape() {
    let (tx, mut rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(Inbound::Metrics { reply }) = rx.recv().await {
            let _ = reply.send(Err("reading the SAs: Operation not permitted".into()));
        }
    });
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = probe.local_addr().unwrap();
    drop(probe);
    listen(&Address::Tcp(address), tx, Limits::default()).unwrap();
    let (head, body) = scrape(address).await;
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert_eq!(body, "reading the SAs: Operation not permitted\n");
}

#[test]
fn addresses_parse_or_say_what_they_expect() {
    assert_eq!(
        "127.0.0.1:9505".parse(),
        Ok(Address::Tcp("127.0.0.1:9505".parse().unwrap()))
    );
    assert_eq!(
        "unix:/run/m.sock".parse(),
        Ok(Address::Unix("/run/m.sock".into()))
    );
    let bad = "localhost".parse::<Address>().unwrap_err();
    assert!(bad.contains("neither ADDRESS:PORT"), "{bad}");
    assert!("unix:".parse::<Address>().is_err());
}

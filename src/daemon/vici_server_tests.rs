use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::*;

/// Serves `limits` at a fresh socket with a loop that answers every call with `version`.
async fn start(
    dir: &tempfile::TempDir,
    limits: Limits,
) -> (PathBuf, broadcast::Sender<(String, Message)>) {
    let path = dir.path().join("charon.vici");
    let (calls, mut rx) = mpsc::channel::<Call>(16);
    let (events, _) = broadcast::channel(16);
    listen(&path, calls, events.clone(), limits).unwrap();
    tokio::spawn(async move {
        while let Some(call) = rx.recv().await {
            let answer = match call.command.as_str() {
                "version" => Answer::Reply {
                    events: vec![("list-sa".into(), Message::new().kv("streamed", "yes"))],
                    response: messages::version(),
                },
                _ => Answer::Unknown,
            };
            let _ = call.reply.send(answer);
        }
    });
    (path, events)
}

/// A blocking client on its own thread, so the server's runtime keeps running.
fn exchange(
    path: PathBuf,
    sent: Vec<Vec<u8>>,
    replies: usize,
) -> tokio::task::JoinHandle<Vec<Packet>> {
    tokio::task::spawn_blocking(move || {
        let mut stream = std::os::unix::net::UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        for bytes in sent {
            stream.write_all(&bytes).unwrap();
        }
        (0..replies)
            .map_while(|_| read_packet(&mut stream))
            .collect()
    })
}

fn read_packet(stream: &mut std::os::unix::net::UnixStream) -> Option<Packet> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).ok()?;
    let mut body = vec![0; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).ok()?;
    codec::decode_packet(&body).ok()
}

fn request(command: &str) -> Vec<u8> {
    codec::encode_packet(&Packet::Request {
        command: command.into(),
        message: Message::new(),
    })
    .unwrap()
}

fn errmsg(packet: &Packet) -> String {
    match packet {
        Packet::Response(m) if m.str("success") == Some("no") => m.str("errmsg").unwrap().into(),
        other => panic!("not an error response: {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn requests_are_answered_and_streams_reach_only_registered_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _events) = start(&dir, Limits::default()).await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let plain = exchange(path.clone(), vec![request("version")], 1)
        .await
        .unwrap();
    assert!(matches!(&plain[0], Packet::Response(m) if m.str("daemon") == Some("routevpn")));
    let register = codec::encode_packet(&Packet::Register("list-sa".into())).unwrap();
    let listening = exchange(path.clone(), vec![register, request("version")], 3)
        .await
        .unwrap();
    assert_eq!(listening[0], Packet::Confirm);
    assert!(matches!(&listening[1], Packet::Event { name, .. } if name == "list-sa"));
    assert!(matches!(&listening[2], Packet::Response(_)));
    let unknown = exchange(path.clone(), vec![request("format-disk")], 1)
        .await
        .unwrap();
    assert_eq!(unknown, vec![Packet::Unknown]);
    let bogus = codec::encode_packet(&Packet::Register("no-such-event".into())).unwrap();
    let refused = exchange(path, vec![bogus], 1).await.unwrap();
    assert_eq!(refused, vec![Packet::EventUnknown]);
}

#[tokio::test(flavor = "current_thread")]
async fn malformed_and_oversized_packets_get_an_error_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _events) = start(&dir, Limits::default()).await;
    // A request whose message closes a section never opened.
    let malformed = vec![0, 0, 0, 4, 0, 1, b'x', 2];
    let answer = exchange(path.clone(), vec![malformed], 2).await.unwrap();
    assert_eq!(
        answer.len(),
        1,
        "the connection is closed after the error: {answer:?}"
    );
    assert!(
        errmsg(&answer[0]).contains("malformed VICI packet"),
        "{answer:?}"
    );
    let oversized = ((codec::MAX_PACKET + 1) as u32).to_be_bytes().to_vec();
    let answer = exchange(path.clone(), vec![oversized], 2).await.unwrap();
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(
        errmsg(&answer[0]).contains("more than 524288"),
        "{answer:?}"
    );
    let unknown_type = vec![0, 0, 0, 1, 9];
    let answer = exchange(path.clone(), vec![unknown_type], 2).await.unwrap();
    assert!(
        errmsg(&answer[0]).contains("unknown packet type 9"),
        "{answer:?}"
    );
    let after = exchange(path, vec![request("version")], 1).await.unwrap();
    assert!(matches!(&after[0], Packet::Response(m) if m.str("daemon") == Some("routevpn")));
}

#[tokio::test(flavor = "current_thread")]
async fn a_hundred_idle_clients_do_not_block_service() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _events) = start(&dir, Limits::default()).await;
    let idle: Vec<_> = (0..100)
        .map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap())
        .collect();
    // One of them has begun a packet and stalls.
    (&idle[0]).write_all(&[0, 0, 0, 10, 0]).unwrap();
    let answered = exchange(path, vec![request("version")], 1).await.unwrap();
    assert!(matches!(&answered[0], Packet::Response(m) if m.str("daemon") == Some("routevpn")));
    drop(idle);
}

#[tokio::test(flavor = "current_thread")]
async fn idle_and_stalled_clients_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let short = Duration::from_millis(200);
    let idle = Limits {
        idle_timeout: short,
        ..Limits::default()
    };
    let (path, _events) = start(&dir, idle).await;
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = std::os::unix::net::UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.read(&mut [0u8; 16]).map_err(|e| e.kind())
    });
    // End of file, not the read timeout: the server closed the idle connection.
    assert_eq!(closed.await.unwrap(), Ok(0));
    let dir = tempfile::tempdir().unwrap();
    let stalling = Limits {
        packet_timeout: short,
        ..Limits::default()
    };
    let (path, _events) = start(&dir, stalling).await;
    let stalled = exchange(path, vec![vec![0, 0, 0, 10, 0]], 1).await.unwrap();
    assert!(
        errmsg(&stalled[0]).contains("not complete within"),
        "{stalled:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn clients_over_the_cap_are_told_busy() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        clients: 2,
        ..Limits::default()
    };
    let (path, _events) = start(&dir, limits).await;
    let held: Vec<_> = (0..2)
        .map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap())
        .collect();
    let refused = exchange(path, vec![], 1).await.unwrap();
    assert!(errmsg(&refused[0]).contains("busy"), "{refused:?}");
    drop(held);
}

#[tokio::test(flavor = "current_thread")]
async fn raised_events_reach_registered_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (path, events) = start(&dir, Limits::default()).await;
    let register = codec::encode_packet(&Packet::Register("log".into())).unwrap();
    let client = exchange(path, vec![register], 2);
    // Raise until the client has registered (a send before it has no receiver).
    let log = ("log".to_string(), Message::new().kv("msg", "hello"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !client.is_finished() && tokio::time::Instant::now() < deadline {
        let _ = events.send(log.clone());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = client.await.unwrap();
    assert_eq!(got[0], Packet::Confirm);
    assert_eq!(
        got[1],
        Packet::Event {
            name: log.0,
            message: log.1
        }
    );
}

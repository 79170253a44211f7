//! The control socket under abuse: each test drives the real listener, then checks that a
//! plain status request still gets its answer.

use std::io::{BufRead, ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::*;
use crate::daemon::control::{wait_established, IkeSaReport};

/// Stands in for the daemon's loop: answers every request with "served".
fn answer_requests(mut rx: mpsc::Receiver<Inbound>) {
    tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if let Inbound::Control { reply, .. } = message {
                let _ = reply.send(Response::ok("served"));
            }
        }
    });
}

fn start(dir: &tempfile::TempDir, limits: Limits) -> (PathBuf, Arc<Counters>) {
    let path = dir.path().join("routevpn.sock");
    let (tx, rx) = mpsc::channel(16);
    answer_requests(rx);
    let counters = listen(&path, tx, limits).unwrap();
    (path, counters)
}

/// The one answer line a connection gets (5 s at most).
async fn answer_of(stream: &mut UnixStream) -> Response {
    let mut line = String::new();
    let mut reader = BufReader::new(stream);
    tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

async fn status(path: &Path) -> Response {
    let mut stream = UnixStream::connect(path).await.unwrap();
    stream.write_all(b"{\"cmd\":\"status\"}\n").await.unwrap();
    answer_of(&mut stream).await
}

#[tokio::test]
async fn idle_clients_beyond_the_cap_hear_busy_and_the_rest_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        clients: 8,
        request_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let (path, counters) = start(&dir, limits);
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(UnixStream::connect(&path).await.unwrap());
    }
    let busy = status(&path).await;
    assert!(!busy.ok && busy.message.contains("busy"), "{busy:?}");
    let mut timed_out = 0;
    let mut refused = 0;
    for stream in &mut idle {
        let answer = answer_of(stream).await;
        if answer.message.contains("no request line within 2 s") {
            timed_out += 1;
        } else if answer.message.contains("busy") {
            refused += 1;
        }
    }
    assert_eq!((timed_out, refused), (8, 92));
    assert_eq!(counters.busy.load(Ordering::Relaxed), 93);
    let answer = status(&path).await;
    assert!(answer.ok && answer.message == "served", "{answer:?}");
}

#[tokio::test]
async fn an_over_long_request_line_is_refused_without_being_read_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        request_bytes: 1024,
        ..Limits::default()
    };
    let (path, _) = start(&dir, limits);
    let mut stream = UnixStream::connect(&path).await.unwrap();
    // No newline, and the connection stays open: the daemon must stop reading on its own.
    stream.write_all(&[b'x'; 4096]).await.unwrap();
    let answer = answer_of(&mut stream).await;
    assert!(
        !answer.ok && answer.message == "request longer than 1024 bytes",
        "{answer:?}"
    );
    let answer = status(&path).await;
    assert!(answer.ok, "{answer:?}");
}

#[tokio::test]
async fn a_client_that_never_sends_is_answered_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        request_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let (path, _) = start(&dir, limits);
    let mut silent = UnixStream::connect(&path).await.unwrap();
    let answer = answer_of(&mut silent).await;
    assert!(
        !answer.ok && answer.message.starts_with("no request line within"),
        "{answer:?}"
    );
    let mut rest = Vec::new();
    silent.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "closed after the answer");
    assert!(status(&path).await.ok);
}

#[tokio::test]
async fn the_socket_is_private_and_only_a_dead_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routevpn.sock");
    // A regular file is not ours to remove.
    std::fs::write(&path, "notes").unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let err = listen(&path, tx.clone(), Limits::default()).unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "notes");
    std::fs::remove_file(&path).unwrap();

    // A socket left by a killed daemon: nobody answers, it is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let (path, _) = start(&dir, Limits::default());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(status(&path).await.ok);
    // The staging directory is gone; a second daemon is turned away.
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1);
    let err = listen(&path, tx, Limits::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(status(&path).await.ok);
}

const EMFILE_CHILD: &str = "ROUTEVPN_TEST_EMFILE_CHILD";

/// Accept fails with EMFILE while the file table is full; once descriptors are free again
/// the loop must still be there. Runs in a child process: the descriptor limit is
/// process-wide and would break the other tests.
#[test]
fn accept_errors_do_not_end_the_accept_loop() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "daemon::control_server::tests::emfile_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMFILE_CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the child ran: {stdout}");
    assert!(
        stderr.contains("control socket: accept failed: Too many open files"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("accept failed").count(),
        1,
        "one line per burst: {stderr}"
    );
    assert!(stderr.contains("accepting again after"), "{stderr}");
}

#[test]
#[ignore = "run by accept_errors_do_not_end_the_accept_loop in a child process"]
fn emfile_child() {
    if std::env::var_os(EMFILE_CHILD).is_none() {
        return;
    }
    let limit = libc::rlimit {
        rlim_cur: 128,
        rlim_max: 128,
    };
    // SAFETY: a plain struct passed by pointer.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routevpn.sock");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn({
        let path = path.clone();
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (tx, rx) = mpsc::channel(16);
                answer_requests(rx);
                let limits = Limits {
                    accept_backoff: Duration::from_millis(20),
                    ..Limits::default()
                };
                ready_tx.send(listen(&path, tx, limits).unwrap()).unwrap();
                std::future::pending::<()>().await;
            });
        }
    });
    let counters = ready_rx.recv().unwrap();
    // The client's descriptor exists before the table is filled; connecting needs none.
    let client = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
    let mut filler = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => filler.push(file),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("{e}"),
        }
    }
    client
        .connect(&socket2::SockAddr::unix(&path).unwrap())
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while counters.failed_accepts.load(Ordering::Relaxed) < 3 {
        assert!(std::time::Instant::now() < deadline, "accept never failed");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(filler);
    let mut client = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(client));
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(client)
        .read_line(&mut line)
        .unwrap();
    let answer: Response = serde_json::from_str(&line).unwrap();
    assert!(answer.ok && answer.message == "served", "{answer:?}");
}

/// Stands in for a daemon whose tunnels `names` come up one per status request, except
/// `never`.
fn establish_one_per_status(mut rx: mpsc::Receiver<Inbound>, names: Vec<String>, never: &str) {
    let never = never.to_owned();
    tokio::spawn(async move {
        let mut asked = 0;
        while let Some(message) = rx.recv().await {
            if let Inbound::Control { reply, .. } = message {
                asked += 1;
                let mut response = Response::ok("");
                let up = names.iter().take(asked).filter(|n| **n != never);
                response.ike_sas = up
                    .map(|name| IkeSaReport {
                        name: name.clone(),
                        state: "ESTABLISHED".into(),
                        children: vec![Default::default()],
                        ..IkeSaReport::default()
                    })
                    .collect();
                let _ = reply.send(response);
            }
        }
    });
}

#[tokio::test]
async fn up_all_waits_until_every_tunnel_is_established_reporting_progress() {
    let names: Vec<String> = ["a", "b", "c"].map(String::from).into();
    for (never, wait, expected_missing) in [
        ("", Duration::from_secs(30), vec![]),
        ("b", Duration::from_millis(300), vec!["b".to_string()]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routevpn.sock");
        let (tx, rx) = mpsc::channel(16);
        establish_one_per_status(rx, names.clone(), never);
        listen(&path, tx, Limits::default()).unwrap();
        let names = names.clone();
        let (missing, reports) = tokio::task::spawn_blocking(move || {
            let mut reports = Vec::new();
            let deadline = std::time::Instant::now() + wait;
            let poll = Duration::from_millis(10);
            let missing = wait_established(&path, &names, deadline, poll, &mut |d, t| {
                reports.push((d, t))
            });
            (missing.unwrap(), reports)
        })
        .await
        .unwrap();
        assert_eq!(missing, expected_missing);
        if never.is_empty() {
            assert_eq!(reports, [(1, 3), (2, 3), (3, 3)]);
        } else {
            assert_eq!(reports.last(), Some(&(2, 3)), "{reports:?}");
        }
    }
}

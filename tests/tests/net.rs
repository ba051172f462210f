//! Issue 16: the guest on a network (`--net`, qemu's user network), guest
//! servers on the host's loopback (`--forward`), and qemu's gdb stub
//! (`--gdb`). Traffic stays on 127.0.0.0/8 on the host and no name is
//! ever looked up.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tests::{Scratch, chrootvm_quiet, run, start_reaped};

const SUBREAPER: &str = env!("CARGO_BIN_EXE_subreaper");

fn root(test: &str) -> (Scratch, PathBuf) {
    tests::busybox_scratch(test)
}

/// Deterministic bytes, all 256 values.
fn blob(len: usize) -> Vec<u8> {
    let mut state = 7u32;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            state.to_be_bytes()[0]
        })
        .collect()
}

fn sha256(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// An HTTP server on the host's 127.0.0.1 that serves `body` to each
/// request until the listener is dropped with the returned thread.
fn serve_on_loopback(body: Vec<u8>) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        // One request is all the test makes.
        if let Ok((stream, _)) = listener.accept() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    (port, server)
}

/// The guest fetches a file from a server on the host's loopback (10.0.2.2
/// in the user network), byte for byte; its resolv.conf names the user
/// network's resolver on a read-only root, and the host's file is
/// unchanged.
#[test]
fn the_guest_reaches_the_hosts_loopback_and_has_a_resolver() {
    let (_scratch, root) = root("net-fetch");
    fs::write(root.join("etc/resolv.conf"), "nameserver 192.0.2.1\n").unwrap();
    let data = blob(300_000);
    let (port, server) = serve_on_loopback(data.clone());
    let mut command = chrootvm_quiet();
    command.arg("--net").arg(&root).args([
        "sh",
        "-c",
        &format!(
            "wget -q -O - http://10.0.2.2:{port}/blob | sha256sum; cat /etc/resolv.conf; \
             ip -4 addr show eth0 | grep -o 'inet [0-9./]*'; ip route | grep default"
        ),
    ]);
    let vm = run(command);
    let _ = server.join();
    vm.check(vm.code() == Some(0), "the command should succeed");
    let lines: Vec<&str> = vm.stdout.lines().collect();
    vm.check(
        lines.first().is_some_and(|l| l.starts_with(&sha256(&data))),
        "the file should arrive byte for byte",
    );
    vm.check(
        lines.get(1) == Some(&"nameserver 10.0.2.3")
            && lines.get(2) == Some(&"inet 10.0.2.15/24")
            && lines
                .get(3)
                .is_some_and(|l| l.starts_with("default via 10.0.2.2")),
        "the interface, route and resolver should be the user network's",
    );
    vm.check(
        fs::read_to_string(root.join("etc/resolv.conf")).unwrap() == "nameserver 192.0.2.1\n",
        "the host's tree should be unchanged",
    );
}

/// A resolv.conf that links into /run (systemd-resolved's stub), dangling
/// in the tree as shared: the guest still gets the resolver, the link
/// stays a link.
#[test]
fn a_resolv_conf_linking_into_run_gets_the_resolver() {
    let (_scratch, root) = root("net-stub");
    std::os::unix::fs::symlink(
        "../run/systemd/resolve/stub-resolv.conf",
        root.join("etc/resolv.conf"),
    )
    .unwrap();
    let mut command = chrootvm_quiet();
    command
        .arg("--net")
        .arg(&root)
        .args(["sh", "-c", "cat /etc/resolv.conf"]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(0) && vm.stdout == "nameserver 10.0.2.3\n",
        "the link's target in /run should name the resolver",
    );
    vm.check(
        fs::read_link(root.join("etc/resolv.conf")).is_ok() && !root.join("run/systemd").exists(),
        "the host's tree should be unchanged",
    );
}

/// Without --net the guest has loopback only, and no resolv.conf change.
#[test]
fn without_net_the_guest_has_only_loopback() {
    let (_scratch, root) = root("no-net");
    let mut command = chrootvm_quiet();
    command.arg(&root).args([
        "sh",
        "-c",
        "ls /sys/class/net; ip -4 addr show lo | grep -o 'inet [0-9./]*'",
    ]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(0) && vm.stdout == "lo\ninet 127.0.0.1/8\n",
        "only lo, and it is up",
    );
}

/// A server in the guest, reached from the host's 127.0.0.1 through
/// --forward; the same host port in use is refused before the VM starts.
#[test]
fn forward_reaches_a_guest_server_and_refuses_a_busy_port() {
    let (_scratch, root) = root("net-forward");
    fs::create_dir_all(root.join("www")).unwrap();
    let page = blob(50_000);
    fs::write(root.join("www/page"), &page).unwrap();
    // A free port, released for chrootvm to take.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = chrootvm_quiet();
    command
        .arg("--forward")
        .arg(format!("{port}:8080"))
        .arg(&root)
        .args([
            "sh",
            "-c",
            "httpd -p 8080 -h /www && echo ready && exec sleep 1000",
        ]);
    let mut vm = start_reaped(SUBREAPER, &command);
    vm.wait_for_stdout("ready", Duration::from_secs(180));
    // While it runs, the port is taken: a second run is refused at once.
    let mut busy = chrootvm_quiet();
    busy.arg("--forward")
        .arg(format!("{port}:80"))
        .arg(&root)
        .arg("true");
    let refused = run(busy);
    let got = fetch(port);
    vm.signal(Signal::TERM);
    let (vm, left) = vm.finish();
    vm.check(
        got == page,
        &format!(
            "the guest's page should arrive byte for byte ({} bytes came)",
            got.len()
        ),
    );
    vm.check(vm.code() == Some(143) && left.is_empty(), "a clean stop");
    refused.check(
        refused.code() == Some(125)
            && refused
                .stderr
                .contains(&format!("chrootvm: cannot forward 127.0.0.1:{port}: Address already in use (choose another port)")),
        "a busy host port should be one clear error",
    );
}

/// Reads from the stub until `done` holds for what came.
fn read_until(stream: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !done(&got) {
        let n = stream.read(&mut buf).expect("the gdb stub should answer");
        assert!(
            n > 0,
            "the gdb stub closed: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// GET /page from the host's 127.0.0.1:port, retried while the forward
/// is being set up.
fn fetch(port: u16) -> Vec<u8> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = TcpStream::connect(("127.0.0.1", port)).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            stream.write_all(b"GET /page HTTP/1.0\r\n\r\n")?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response)?;
            Ok(response)
        });
        if let Ok(response) = attempt
            && let Some(at) = response.windows(4).position(|w| w == b"\r\n\r\n")
        {
            return response[at + 4..].to_vec();
        }
        assert!(Instant::now() < end, "no answer through the forward");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// --gdb: the stub listens on 127.0.0.1 while the guest runs, answers the
/// remote protocol's "why did you stop" query, and lets the guest go on
/// after a detach; the kernel boots without address randomisation.
#[test]
fn gdb_stub_answers_while_the_guest_runs() {
    let (_scratch, root) = root("gdb");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = chrootvm_quiet();
    command.arg(format!("--gdb={port}")).arg(&root).args([
        "sh",
        "-c",
        "grep -o nokaslr /proc/cmdline; echo ready; while :; do echo tick; sleep 0.2; done",
    ]);
    let mut vm = start_reaped(SUBREAPER, &command);
    vm.wait_for_stdout("ready", Duration::from_secs(180));
    let mut gdb = TcpStream::connect(("127.0.0.1", port)).unwrap();
    gdb.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // `$?#3f`: why the target stopped (a connection stops the VM).
    gdb.write_all(b"$?#3f").unwrap();
    let reply = read_until(&mut gdb, |got| {
        got.iter()
            .position(|&b| b == b'#')
            .is_some_and(|at| got.len() >= at + 3)
    });
    // Acknowledge, then detach: the guest runs on.
    gdb.write_all(b"+$D#44").unwrap();
    let detached = read_until(&mut gdb, |got| got.windows(6).any(|w| w == b"$OK#9a"));
    drop(gdb);
    // The guest runs on: two more ticks come after the detach.
    let ticks = vm.stdout_so_far().matches("tick\n").count();
    vm.wait_for_stdout(&"tick\n".repeat(ticks + 2), Duration::from_secs(60));
    vm.signal(Signal::TERM);
    let (vm, left) = vm.finish();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    vm.check(
        reply.contains("$T") || reply.contains("$S"),
        &format!("the stub should answer a stop reply, not {reply:?}"),
    );
    vm.check(!detached.is_empty(), "the detach should be accepted");
    vm.check(
        vm.stdout.starts_with("nokaslr\nready\n"),
        "the kernel should boot with nokaslr",
    );
    vm.check(
        vm.stderr.contains(&format!(
            "chrootvm: gdb stub on 127.0.0.1:{port}; attach with: gdb vmlinux -ex 'target remote 127.0.0.1:{port}'"
        )),
        "the attach command should be printed",
    );
    vm.check(left.is_empty(), "nothing left behind");
}

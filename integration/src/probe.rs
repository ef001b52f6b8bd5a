//! One-shot TCP endpoints living in chosen namespaces, to observe real source addresses.
//!
//! A socket belongs to the netns it was created in, so each endpoint runs on its own thread that
//! enters the namespace through [`NetnsGuard`]; the test thread never changes namespace.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::netns::{Netns, NetnsGuard};

/// How long a listener waits for its one client.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Greeting the listener sends, so the client proves a full round trip.
pub const GREETING: &[u8] = b"vbridge-probe\n";

/// A listener that accepts one connection and reports the peer's address.
pub struct Listener {
    handle: JoinHandle<io::Result<SocketAddr>>,
}

impl Listener {
    /// Binds `bind` inside `ns`; returns once the socket is listening.
    pub fn spawn(ns: &Netns, bind: SocketAddr) -> io::Result<Listener> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let ns_path = ns.path().to_path_buf();
        let handle = thread::spawn(move || {
            let listener = bind_in(&ns_path, bind);
            let listener = match listener {
                Ok(l) => {
                    let _sent = ready_tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _sent = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            accept_one(&listener)
        });
        let ready = ready_rx
            .recv()
            .map_err(|e| io::Error::other(e.to_string()))?;
        ready.map(|()| Listener { handle })
    }

    /// Waits for the one client; returns the source address it came from.
    pub fn peer(self) -> io::Result<SocketAddr> {
        self.handle
            .join()
            .map_err(|_| io::Error::other("listener thread panicked"))?
    }
}

fn bind_in(ns_path: &std::path::Path, bind: SocketAddr) -> io::Result<TcpListener> {
    let _guard = NetnsGuard::enter_path(ns_path)?;
    let listener = TcpListener::bind(bind)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn accept_one(listener: &TcpListener) -> io::Result<SocketAddr> {
    let deadline = Instant::now() + ACCEPT_TIMEOUT;
    loop {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                stream.set_nonblocking(false)?;
                stream.write_all(GREETING)?;
                return Ok(peer);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "nobody connected"));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Connects from inside `ns` to `to` and reads the listener's greeting; returns the local
/// address the client used.
pub fn connect(ns: &Netns, to: SocketAddr) -> io::Result<SocketAddr> {
    let ns_path = ns.path().to_path_buf();
    let worker = thread::spawn(move || connect_in(&ns_path, to));
    worker
        .join()
        .map_err(|_| io::Error::other("client thread panicked"))?
}

fn connect_in(ns_path: &std::path::Path, to: SocketAddr) -> io::Result<SocketAddr> {
    let _guard = NetnsGuard::enter_path(ns_path)?;
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = vec![0; GREETING.len()];
    stream.read_exact(&mut buf)?;
    if buf != GREETING {
        return Err(io::Error::other("unexpected greeting"));
    }
    stream.local_addr()
}

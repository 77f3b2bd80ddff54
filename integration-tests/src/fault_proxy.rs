//! A TCP proxy that puts faults between a client and a real server (the
//! `docker-registry`, moto's S3): per connection, with given probabilities,
//! it answers `503` without reaching the server, resets the connection
//! after the request arrives, or cuts the server's answer after a random
//! number of bytes (a truncated blob or listing). Other connections are
//! passed through untouched. Working below HTTP keeps it honest for any
//! server and any client, keep-alive included (a fault hits whatever request
//! the connection carries at that moment).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Probabilities (0.0–1.0, summing to at most 1) of each fault per connection.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultMix {
    pub unavailable_503: f64,
    pub reset: f64,
    pub truncate: f64,
}

impl FaultMix {
    /// The same probability for each of the three faults.
    pub fn each(p: f64) -> Self {
        FaultMix {
            unavailable_503: p,
            reset: p,
            truncate: p,
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    connections: AtomicU64,
    unavailable_503: AtomicU64,
    reset: AtomicU64,
    truncate: AtomicU64,
}

pub struct FaultProxy {
    /// `127.0.0.1:PORT` to give the client instead of the server's address.
    pub addr: SocketAddr,
    counts: Arc<Counts>,
    mix: Arc<std::sync::Mutex<FaultMix>>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone, Copy)]
enum Fault {
    None,
    Unavailable,
    Reset,
    Truncate(usize),
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr, mix: FaultMix) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let mix = Arc::new(std::sync::Mutex::new(mix));
        let (c, m) = (counts.clone(), mix.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = pick(*m.lock().unwrap(), &c);
                tokio::spawn(serve(client, upstream, fault));
            }
        });
        Ok(FaultProxy {
            addr,
            counts,
            mix,
            task,
        })
    }

    /// Changes the mix for connections accepted from now on (e.g. no faults
    /// while the test reads its results).
    pub fn set_mix(&self, mix: FaultMix) {
        *self.mix.lock().unwrap() = mix;
    }

    /// Connections seen and faults injected, by kind.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        let c = &self.counts;
        BTreeMap::from([
            ("connections", c.connections.load(Ordering::Relaxed)),
            ("503", c.unavailable_503.load(Ordering::Relaxed)),
            ("reset", c.reset.load(Ordering::Relaxed)),
            ("truncate", c.truncate.load(Ordering::Relaxed)),
        ])
    }
}

fn pick(mix: FaultMix, counts: &Counts) -> Fault {
    counts.connections.fetch_add(1, Ordering::Relaxed);
    let r: f64 = rand::random();
    if r < mix.unavailable_503 {
        counts.unavailable_503.fetch_add(1, Ordering::Relaxed);
        Fault::Unavailable
    } else if r < mix.unavailable_503 + mix.reset {
        counts.reset.fetch_add(1, Ordering::Relaxed);
        Fault::Reset
    } else if r < mix.unavailable_503 + mix.reset + mix.truncate {
        counts.truncate.fetch_add(1, Ordering::Relaxed);
        Fault::Truncate(1 + rand::random::<u32>() as usize % 32_768)
    } else {
        Fault::None
    }
}

/// Reads until the end of the request head (or 64 KiB, or 5 s): enough for
/// the client to have sent its request before it sees the fault.
async fn read_request_head(client: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while head.len() < 65_536 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    head
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, fault: Fault) {
    match fault {
        Fault::Unavailable => {
            read_request_head(&mut client).await;
            let _ = client
                .write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
        Fault::Reset => {
            read_request_head(&mut client).await;
            // SO_LINGER 0: the close sends RST, as a crashed peer does. (The
            // deprecation warns of blocking drops; a zero linger never blocks.)
            #[allow(deprecated)]
            let _ = client.set_linger(Some(Duration::ZERO));
        }
        Fault::None | Fault::Truncate(_) => {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let limit = match fault {
                Fault::Truncate(n) => Some(n),
                _ => None,
            };
            pipe(client, server, limit).await;
        }
    }
}

/// Copies both ways; with `limit`, the server's answer is cut after that
/// many bytes and both connections are closed.
async fn pipe(client: TcpStream, server: TcpStream, limit: Option<usize>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
    });
    let mut left = limit.unwrap_or(usize::MAX);
    let mut buf = vec![0u8; 16 * 1024];
    while left > 0 {
        match sr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let n = n.min(left);
                if cw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                left -= n;
            }
        }
    }
    let _ = cw.shutdown().await;
    up.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_through_and_injects_each_fault() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = server.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let body = vec![b'x'; 100_000];
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&body).await;
                });
            }
        });
        let get = |addr: SocketAddr| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out).await;
            out
        };
        let proxy = FaultProxy::start(server_addr, FaultMix::default())
            .await
            .unwrap();
        assert!(get(proxy.addr).await.len() > 100_000);
        proxy.set_mix(FaultMix {
            unavailable_503: 1.0,
            ..FaultMix::default()
        });
        assert!(get(proxy.addr).await.starts_with(b"HTTP/1.1 503"));
        proxy.set_mix(FaultMix {
            truncate: 1.0,
            ..FaultMix::default()
        });
        let cut = get(proxy.addr).await;
        assert!(cut.len() <= 32_768, "{} bytes", cut.len());
        proxy.set_mix(FaultMix {
            reset: 1.0,
            ..FaultMix::default()
        });
        assert!(get(proxy.addr).await.is_empty());
        let counts = proxy.counts();
        assert_eq!(counts["connections"], 4);
        assert_eq!(
            (counts["503"], counts["truncate"], counts["reset"]),
            (1, 1, 1)
        );
    }
}

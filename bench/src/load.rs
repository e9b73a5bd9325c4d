//! A closed-loop load generator: N connections, each sending its next request when the last
//! one is answered, for a fixed time.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one load run measured.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Sorted latencies in microseconds.
    pub latencies: Vec<u32>,
}

impl Stats {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// The `q` quantile (0–1) in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies[i]) / 1000.0
    }
}

/// What each request carries.
#[derive(Clone)]
pub enum Auth {
    None,
    /// The same key every time.
    Key(String),
    /// A fresh, well-formed key that exists nowhere, every time.
    Forged,
}

/// Drives `url` from `connections` connections for `duration`, bound to `from` if given.
/// A status other than `expect` counts as an error.
pub async fn drive(
    url: &str,
    auth: Auth,
    connections: usize,
    duration: Duration,
    from: Option<IpAddr>,
    expect: u16,
) -> Stats {
    let url: Arc<str> = Arc::from(url);
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let url = url.clone();
            let auth = auth.clone();
            tokio::spawn(async move {
                let mut builder = reqwest::Client::builder().pool_max_idle_per_host(1).timeout(Duration::from_secs(10));
                if let Some(ip) = from {
                    builder = builder.local_address(ip);
                }
                let Ok(client) = builder.build() else { return (0, 1, Vec::new()) };
                let (mut ok, mut errors, mut lat) = (0u64, 0u64, Vec::with_capacity(100_000));
                while Instant::now() < deadline {
                    let mut req = client.get(&*url);
                    match &auth {
                        Auth::None => {}
                        Auth::Key(k) => req = req.bearer_auth(k),
                        Auth::Forged => req = req.bearer_auth(forged_key()),
                    }
                    let t = Instant::now();
                    let result = req.send().await;
                    let good = match result {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let _ = r.bytes().await;
                            status == expect
                        }
                        Err(_) => false,
                    };
                    lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    if good { ok += 1 } else { errors += 1 }
                }
                (ok, errors, lat)
            })
        })
        .collect();
    let mut stats = Stats::default();
    for t in tasks {
        if let Ok((ok, errors, lat)) = t.await {
            stats.requests += ok;
            stats.errors += errors;
            stats.latencies.extend(lat);
        }
    }
    stats.seconds = start.elapsed().as_secs_f64();
    stats.latencies.sort_unstable();
    stats
}

fn forged_key() -> String {
    use cloacina_domain::MintedKey;
    use cloacina_domain::ports::KeyGenerator;
    let g = cloacina_system::OsKeyGenerator;
    MintedKey::new(g.key_id(), g.secret()).plaintext().expose().to_owned()
}

/// The median of some numbers.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

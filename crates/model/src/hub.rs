//! Files from the Hugging Face Hub through hf-hub, and a loopback stand-in of the hub for tests.
//!
//! A reference reads `hub:owner/repo`, `hub:owner/repo@revision`, and for data sets
//! `hub:datasets/owner/repo[@revision]`; a file inside the repo is named separately.
//! The endpoint and cache come from `HF_ENDPOINT` / `HF_HOME` unless [`HubOptions`] sets them.

use std::path::PathBuf;

use candle_core::Result;
use hf_hub::{Repo, RepoType, api::sync::ApiBuilder};

/// A parsed `hub:` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRef {
    /// `owner/repo`.
    pub repo_id: String,
    /// Branch, tag or commit (default `main`).
    pub revision: String,
    /// Whether this is a data set repository (`hub:datasets/...`).
    pub dataset: bool,
}

impl HubRef {
    /// Parses `hub:owner/repo[@revision]` or `hub:datasets/owner/repo[@revision]`;
    /// returns `None` when `s` does not start with `hub:`.
    pub fn parse(s: &str) -> Option<Result<Self>> {
        let rest = s.strip_prefix("hub:")?;
        let (rest, dataset) = match rest.strip_prefix("datasets/") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let (repo_id, revision) = match rest.split_once('@') {
            Some((r, rev)) => (r, rev),
            None => (rest, "main"),
        };
        let valid = |p: &str| !p.is_empty() && !p.contains(char::is_whitespace);
        let parts: Vec<&str> = repo_id.split('/').collect();
        if parts.len() != 2 || !parts.iter().all(|p| valid(p)) || !valid(revision) {
            return Some(Err(candle_core::Error::Msg(format!(
                "`{s}` is not a hub reference of the form hub:owner/repo[@revision]"
            ))));
        }
        Some(Ok(Self { repo_id: repo_id.to_string(), revision: revision.to_string(), dataset }))
    }

    fn repo(&self) -> Repo {
        let kind = if self.dataset { RepoType::Dataset } else { RepoType::Model };
        Repo::with_revision(self.repo_id.clone(), kind, self.revision.clone())
    }
}

/// Where to reach the hub; `None` fields fall back to `HF_ENDPOINT` / `HF_HOME` / defaults.
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub endpoint: Option<String>,
    /// Cache directory (hf-hub layout).
    pub cache_dir: Option<PathBuf>,
}

/// Downloads (or finds in the cache) `file` of the referenced repository; returns its local path.
pub fn fetch(hub: &HubRef, file: &str, opts: &HubOptions) -> Result<PathBuf> {
    let mut builder = ApiBuilder::from_env().with_progress(false);
    if let Some(e) = &opts.endpoint {
        builder = builder.with_endpoint(e.clone());
    }
    if let Some(c) = &opts.cache_dir {
        builder = builder.with_cache_dir(c.clone());
    }
    let api = builder.build().map_err(|e| hub_err(hub, file, e))?;
    api.repo(hub.repo()).get(file).map_err(|e| hub_err(hub, file, e))
}

fn hub_err(hub: &HubRef, file: &str, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("fetching `{file}` from hub repo {}@{}: {e}", hub.repo_id, hub.revision))
}

/// A loopback HTTP server that speaks the part of the hub protocol hf-hub uses
/// (`GET /{repo}/resolve/{revision}/{file}` with `Range`, `etag`, `x-repo-commit`).
#[cfg(feature = "hub-standin")]
pub mod standin {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::thread::JoinHandle;

    use tiny_http::{Header, Response, Server};

    /// A running stand-in; stops when dropped.
    pub struct HubStandin {
        server: Arc<Server>,
        thread: Option<JoinHandle<()>>,
        /// Base URL to pass as the endpoint.
        pub endpoint: String,
    }

    impl HubStandin {
        /// Serves `files`, keyed by URL path without the leading slash, e.g.
        /// `owner/repo/resolve/main/config.json` or `datasets/owner/repo/resolve/main/input.txt`.
        pub fn start(files: HashMap<String, Vec<u8>>) -> std::io::Result<Self> {
            let server = Arc::new(Server::http("127.0.0.1:0").map_err(std::io::Error::other)?);
            let endpoint = format!("http://{}", server.server_addr());
            let srv = server.clone();
            let thread = std::thread::spawn(move || {
                for req in srv.incoming_requests() {
                    let path = req.url().trim_start_matches('/').to_string();
                    let resp = match files.get(&path) {
                        Some(body) => respond(body, range_start(&req)),
                        None => Response::from_data(b"not found".to_vec()).with_status_code(404),
                    };
                    let _ = req.respond(resp);
                }
            });
            Ok(Self { server, thread: Some(thread), endpoint })
        }
    }

    impl Drop for HubStandin {
        fn drop(&mut self) {
            self.server.unblock();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn range_start(req: &tiny_http::Request) -> Option<(usize, Option<usize>)> {
        let h = req.headers().iter().find(|h| h.field.equiv("Range"))?;
        let spec = h.value.as_str().strip_prefix("bytes=")?;
        let (a, b) = spec.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()))
    }

    fn respond(body: &[u8], range: Option<(usize, Option<usize>)>) -> Response<std::io::Cursor<Vec<u8>>> {
        let len = body.len();
        let etag = format!("\"{:016x}\"", fxhash(body));
        let (start, end) = match range {
            Some((s, e)) => (s.min(len), e.map_or(len, |e| (e + 1).min(len))),
            None => (0, len),
        };
        let header = |k: &str, v: &str| Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("ascii header");
        let last = end.max(start + 1) - 1;
        Response::from_data(body[start..end].to_vec())
            .with_status_code(if range.is_some() { 206 } else { 200 })
            .with_header(header("etag", &etag))
            .with_header(header("x-repo-commit", "0123456789abcdef0123456789abcdef01234567"))
            .with_header(header("Content-Range", &format!("bytes {start}-{last}/{len}")))
    }

    fn fxhash(data: &[u8]) -> u64 {
        data.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
    }
}

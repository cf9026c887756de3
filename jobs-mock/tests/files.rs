//! The object store of `jobs-service` (`jobs_mock::server::files`): signed GETs, ranges,
//! expiry on the service's clock, tampering, and S3-shaped errors — without HTTP (the HTTP
//! round trip is in `aws_clients.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a panic fails the test"
)]

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use jobs_mock::server::files::{FILES_PREFIX, FileReply, Files};
use jobs_mock::service::presign::{ObjectName, UrlSigner};
use jobs_mock::service::{Clock, JobsService};

const T0: i64 = 1_750_000_000;

/// A directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "jobs-mock-files-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Store {
    _dir: TempDir,
    files: Files,
    signer: UrlSigner,
    service: JobsService,
}

/// A store holding `fw-bucket/v2/app.bin` (bytes 0..=255 four times), with the service's
/// signer and virtual clock.
fn store() -> Store {
    let dir = TempDir::new();
    let mut service = JobsService::new(Clock::virtual_at(T0));
    service.set_presigned_url_base(Some(format!("http://127.0.0.1:1{FILES_PREFIX}")));
    let signer = service.url_signer().clone();
    let files = Files::new(Some(dir.0.clone()), signer.clone(), service.clock().clone());
    let data: Vec<u8> = (0..1024).map(|i| (i % 256) as u8).collect();
    files.put(&object(), data.as_slice()).unwrap();
    Store {
        _dir: dir,
        files,
        signer,
        service,
    }
}

fn object() -> ObjectName {
    ObjectName::new("fw-bucket", "v2/app.bin").unwrap()
}

/// The path and query of a URL the service signed.
fn signed(store: &Store, object: &ObjectName, expires: i64) -> String {
    let url = store.signer.url(object, expires).unwrap();
    url.trim_start_matches("http://127.0.0.1:1").to_owned()
}

fn get(
    store: &Store,
    url: &str,
    range: Option<&str>,
) -> (u16, Vec<(&'static str, String)>, Vec<u8>) {
    let reply: FileReply = store.files.handle("GET", url, range, &mut std::io::empty());
    let (mut reader, len) = reply.body.into_reader();
    let mut body = Vec::new();
    reader.read_to_end(&mut body).unwrap();
    assert_eq!(u64::try_from(body.len()).unwrap(), len);
    (reply.status, reply.headers, body)
}

fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

/// The `<Code>` and `<Message>` of an S3 error body.
fn s3_error(body: &[u8]) -> (String, String) {
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.starts_with("<?xml"), "{text}");
    let between = |open: &str, close: &str| {
        let start = text.find(open).unwrap() + open.len();
        let end = text[start..].find(close).unwrap() + start;
        text[start..end].to_owned()
    };
    (
        between("<Code>", "</Code>"),
        between("<Message>", "</Message>"),
    )
}

#[test]
fn a_signed_url_serves_the_object_whole_or_from_a_byte_on() {
    let store = store();
    let url = signed(&store, &object(), T0 + 60);
    let (status, headers, body) = get(&store, &url, None);
    assert_eq!(status, 200);
    assert_eq!(body.len(), 1024);
    assert_eq!(header(&headers, "Accept-Ranges"), Some("bytes"));
    let (status, headers, body) = get(&store, &url, Some("bytes=1000-"));
    assert_eq!(status, 206);
    assert_eq!(
        header(&headers, "Content-Range"),
        Some("bytes 1000-1023/1024")
    );
    assert_eq!(
        body,
        (1000..1024).map(|i| (i % 256) as u8).collect::<Vec<u8>>()
    );
    let (status, headers, body) = get(&store, &url, Some("bytes=-4"));
    assert_eq!((status, body.len()), (206, 4));
    assert_eq!(
        header(&headers, "Content-Range"),
        Some("bytes 1020-1023/1024")
    );
    let (status, headers, body) = get(&store, &url, Some("bytes=1024-"));
    assert_eq!(status, 416);
    assert_eq!(header(&headers, "Content-Range"), Some("bytes */1024"));
    assert_eq!(s3_error(&body).0, "InvalidRange");
}

#[test]
fn a_url_expires_on_the_services_clock_and_a_fresh_one_works_again() {
    let mut store = store();
    let url = signed(&store, &object(), T0 + 60);
    store.service.advance_clock(Duration::from_millis(59_999));
    assert_eq!(get(&store, &url, None).0, 200);
    store.service.advance_clock(Duration::from_millis(1));
    let (status, headers, body) = get(&store, &url, None);
    assert_eq!(status, 403);
    assert_eq!(header(&headers, "Content-Type"), Some("application/xml"));
    assert_eq!(
        s3_error(&body),
        ("AccessDenied".to_owned(), "Request has expired".to_owned())
    );
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("<Expires>2025-06-15T15:07:40Z</Expires>"),
        "{text}"
    );
    let fresh = signed(&store, &object(), T0 + 120);
    assert_eq!(get(&store, &fresh, None).0, 200);
}

#[test]
fn a_tampered_url_is_refused_before_anything_else() {
    let other_run = store();
    let store = store();
    let url = signed(&store, &object(), T0 + 60);
    for tampered in [
        url.replace(
            &format!("Expires={}", T0 + 60),
            &format!("Expires={}", T0 + 6000),
        ),
        url.replace("app.bin", "app.bim"),
        url.replace("Signature=", "Signature=00"),
        // Another run's key: a URL signed by another service.
        signed(&other_run, &object(), T0 + 60),
    ] {
        let (status, _, body) = get(&store, &tampered, None);
        assert_eq!(
            (status, s3_error(&body).0),
            (403, "SignatureDoesNotMatch".to_owned()),
            "{tampered}"
        );
    }
    let bare = url.split('?').next().unwrap().to_owned();
    let (status, _, body) = get(&store, &bare, None);
    assert_eq!(
        (status, s3_error(&body).0),
        (403, "AccessDenied".to_owned())
    );
    let reply = store
        .files
        .handle("HEAD", &url, None, &mut std::io::empty());
    assert_eq!(reply.status, 403, "signed for GET only");
}

#[test]
fn a_missing_object_or_bucket_is_s3s_not_found() {
    let store = store();
    let missing = ObjectName::new("fw-bucket", "v3/app.bin").unwrap();
    let (status, _, body) = get(&store, &signed(&store, &missing, T0 + 60), None);
    assert_eq!((status, s3_error(&body).0), (404, "NoSuchKey".to_owned()));
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("<Key>v3/app.bin</Key>")
    );
    let other = ObjectName::new("other-bucket", "a").unwrap();
    let (status, _, body) = get(&store, &signed(&store, &other, T0 + 60), None);
    assert_eq!(
        (status, s3_error(&body).0),
        (404, "NoSuchBucket".to_owned())
    );
    // Without --files nothing is stored.
    let bare = Files::new(None, store.signer.clone(), store.service.clock().clone());
    let reply = bare.handle(
        "GET",
        &signed(&store, &object(), T0 + 60),
        None,
        &mut std::io::empty(),
    );
    assert_eq!(reply.status, 404);
    assert!(bare.put(&object(), &b"x"[..]).is_err());
}

#[test]
fn put_stores_an_object_whole_and_keys_cannot_escape_the_store() {
    let store = store();
    let path = format!("{FILES_PREFIX}/new-bucket/dir/file%20name.bin");
    let reply = store
        .files
        .handle("PUT", &path, None, &mut &b"hello world"[..]);
    assert_eq!(reply.status, 200);
    let object = ObjectName::new("new-bucket", "dir/file name.bin").unwrap();
    let (status, _, body) = get(&store, &signed(&store, &object, T0 + 60), Some("bytes=6-"));
    assert_eq!((status, body.as_slice()), (206, &b"world"[..]));
    for bad in [
        format!("{FILES_PREFIX}/new-bucket/../escape"),
        format!("{FILES_PREFIX}/new-bucket/a/%2E%2E/b"),
        format!("{FILES_PREFIX}/Bad_Bucket/a"),
        format!("{FILES_PREFIX}/only-bucket"),
    ] {
        let reply = store.files.handle("PUT", &bad, None, &mut &b"x"[..]);
        assert_eq!(reply.status, 400, "{bad}");
    }
}

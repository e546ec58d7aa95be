use std::sync::Arc;

use bongsu_stream::{testsuite, EmbeddedStream, MemoryStream, Stream, StreamOptions};
use parking_lot::Mutex;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stream_passes_the_conformance_suite() {
    testsuite::run_all(&|| MemoryStream::new(StreamOptions::default()) as Arc<dyn Stream>).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_stream_passes_the_conformance_suite() {
    let dirs = Mutex::new(Vec::new());
    let factory = || {
        let d = tempfile::tempdir().unwrap();
        let s = EmbeddedStream::open(d.path(), StreamOptions::default()).unwrap();
        dirs.lock().push(d);
        s as Arc<dyn Stream>
    };
    testsuite::run_all(&factory).await;
}

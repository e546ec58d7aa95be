//! Arbitrary bytes never panic any decoder.

use bongsu_ingest::{decode_loki_push, decode_remote_write, decode_write_request, Limits};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn remote_write_bodies(b in proptest::collection::vec(any::<u8>(), 0..256)) {
        let l = Limits::default();
        let _ = decode_remote_write(&b, &l);
        let _ = decode_write_request(&b, &l);
        let framed = snap::raw::Encoder::new().compress_vec(&b).unwrap();
        let _ = decode_remote_write(&framed, &l);
    }

    #[test]
    fn loki_bodies(b in proptest::collection::vec(any::<u8>(), 0..256)) {
        let l = Limits::default();
        let framed = snap::raw::Encoder::new().compress_vec(&b).unwrap();
        for ct in [None, Some("application/json"), Some("application/x-protobuf")] {
            for ce in [None, Some("gzip")] {
                let _ = decode_loki_push(&b, ct, ce, &l);
                let _ = decode_loki_push(&framed, ct, ce, &l);
            }
        }
    }

    #[test]
    fn loki_json_shapes(s in r#"\{"streams":\[\{"stream":\{("[a-z]{0,3}":"[a-z]{0,3}")?\},"values":\[(\["[0-9-]{0,20}","[a-z]{0,5}"(,\{\})?\])?\]\}\]\}"#) {
        let _ = decode_loki_push(s.as_bytes(), Some("application/json"), None, &Limits::default());
    }
}

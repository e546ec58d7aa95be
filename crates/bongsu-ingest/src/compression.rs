//! Bounded decompression: never allocate past the configured limit.

use std::io::Read;

use crate::error::{Error, Result};
use crate::limits::{Limits, KEY_BODY, KEY_DECOMPRESSED};

pub(crate) fn check_body(body: &[u8], limits: &Limits) -> Result<()> {
    if body.len() > limits.max_body_bytes {
        return Err(Error::BodyTooLarge {
            size: body.len(),
            limit: limits.max_body_bytes,
            key: KEY_BODY,
        });
    }
    Ok(())
}

/// Decompresses a snappy block-format body, checking its declared length before allocating.
pub(crate) fn snappy(body: &[u8], limits: &Limits) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    snappy_into(body, limits, &mut out)?;
    Ok(out)
}

/// [`snappy`] into `out` (replacing its contents), reusing its allocation.
pub(crate) fn snappy_into(body: &[u8], limits: &Limits, out: &mut Vec<u8>) -> Result<()> {
    let bad = |e: snap::Error| {
        Error::malformed("snappy", format!("{e}: send a snappy block-format body"))
    };
    let declared = snap::raw::decompress_len(body).map_err(bad)?;
    if declared > limits.max_decompressed_bytes {
        return Err(Error::DecompressedTooLarge {
            size: declared as u64,
            limit: limits.max_decompressed_bytes,
            key: KEY_DECOMPRESSED,
        });
    }
    out.clear();
    out.resize(declared, 0);
    match snap::raw::Decoder::new().decompress(body, out) {
        Ok(n) => {
            out.truncate(n);
            Ok(())
        }
        Err(e) => {
            out.clear();
            Err(bad(e))
        }
    }
}

/// Decompresses a gzip body, reading at most one byte past the limit.
pub(crate) fn gzip(body: &[u8], limits: &Limits) -> Result<Vec<u8>> {
    let limit = limits.max_decompressed_bytes;
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::malformed("gzip", e))?;
    if out.len() > limit {
        return Err(Error::DecompressedTooLarge {
            size: out.len() as u64,
            limit,
            key: KEY_DECOMPRESSED,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn snappy_declared_length_is_checked_first() {
        // A 5-byte body that declares a 1 GiB output.
        let body = [0x80, 0x80, 0x80, 0x80, 0x04];
        let e = snappy(&body, &Limits::default()).unwrap_err();
        assert!(matches!(e, Error::DecompressedTooLarge { .. }), "{e}");
        assert_eq!(e.kind().http_status(), 413);
    }

    #[test]
    fn gzip_bomb_is_cut_at_the_limit() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 1 << 20]).unwrap();
        let body = enc.finish().unwrap();
        let limits = Limits {
            max_decompressed_bytes: 1000,
            ..Limits::default()
        };
        let e = gzip(&body, &limits).unwrap_err();
        assert!(
            matches!(e, Error::DecompressedTooLarge { size: 1001, .. }),
            "{e}"
        );
        assert_eq!(gzip(&body, &Limits::default()).unwrap().len(), 1 << 20);
        assert!(matches!(
            gzip(b"not gzip", &limits),
            Err(Error::Malformed { .. })
        ));
    }
}

//! Content-Encoding decoders for scanning (`gzip`, `deflate`, `br`, `zstd`), push-based so a
//! body is decoded chunk by chunk as it streams, with an output budget against bombs.

use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("unsupported content-encoding {0:?}")]
    Unsupported(String),
    #[error("the {encoding} body does not decode: {reason}")]
    Corrupt {
        encoding: &'static str,
        reason: String,
    },
}

pub enum Decompressor {
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    /// HTTP's "deflate" is zlib-wrapped by the standard and raw by some servers; the first
    /// bytes tell which.
    Deflate(Option<DeflateKind>, Vec<u8>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Vec<u8>>>),
    Zstd(Box<ruzstd::decoding::FrameDecoder>, Vec<u8>, bool),
}

pub enum DeflateKind {
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    Raw(flate2::write::DeflateDecoder<Vec<u8>>),
}

/// Bytes of zstd input gathered before the first decode call (a whole frame header).
const ZSTD_HEADER_MAX: usize = 18;

impl Decompressor {
    /// A decoder for a `Content-Encoding` value; `None` for identity.
    pub fn for_encoding(encoding: &str) -> Result<Option<Self>, DecompressError> {
        let e = encoding.trim().to_ascii_lowercase();
        Ok(Some(match e.as_str() {
            "" | "identity" => return Ok(None),
            "gzip" | "x-gzip" => Decompressor::Gzip(flate2::write::MultiGzDecoder::new(Vec::new())),
            "deflate" => Decompressor::Deflate(None, Vec::new()),
            "br" => Decompressor::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
                Vec::new(),
                8192,
            ))),
            "zstd" => Decompressor::Zstd(
                Box::new(ruzstd::decoding::FrameDecoder::new()),
                Vec::new(),
                false,
            ),
            _ => return Err(DecompressError::Unsupported(encoding.to_string())),
        }))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Decompressor::Gzip(_) => "gzip",
            Decompressor::Deflate(..) => "deflate",
            Decompressor::Brotli(_) => "br",
            Decompressor::Zstd(..) => "zstd",
        }
    }

    /// Decodes `input`, appending to `out`. `last` flushes what is buffered.
    pub fn feed(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), DecompressError> {
        let name = self.name();
        let corrupt = |reason: String| DecompressError::Corrupt {
            encoding: name,
            reason,
        };
        match self {
            Decompressor::Gzip(d) => {
                d.write_all(input).map_err(|e| corrupt(e.to_string()))?;
                if last {
                    d.try_finish().map_err(|e| corrupt(e.to_string()))?;
                }
                out.append(d.get_mut());
            }
            Decompressor::Deflate(kind, pending) => {
                if kind.is_none() {
                    pending.extend_from_slice(input);
                    if pending.len() < 2 && !last {
                        return Ok(());
                    }
                    // A zlib header: CMF with method 8 and (CMF*256 + FLG) % 31 == 0.
                    let zlib = pending.len() >= 2
                        && pending[0] & 0x0F == 8
                        && (u16::from(pending[0]) << 8 | u16::from(pending[1])) % 31 == 0;
                    *kind = Some(if zlib {
                        DeflateKind::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))
                    } else {
                        DeflateKind::Raw(flate2::write::DeflateDecoder::new(Vec::new()))
                    });
                    let buffered = std::mem::take(pending);
                    return self.feed(&buffered, last, out);
                }
                match kind.as_mut().expect("set above") {
                    DeflateKind::Zlib(d) => {
                        d.write_all(input).map_err(|e| corrupt(e.to_string()))?;
                        if last {
                            d.try_finish().map_err(|e| corrupt(e.to_string()))?;
                        }
                        out.append(d.get_mut());
                    }
                    DeflateKind::Raw(d) => {
                        d.write_all(input).map_err(|e| corrupt(e.to_string()))?;
                        if last {
                            d.try_finish().map_err(|e| corrupt(e.to_string()))?;
                        }
                        out.append(d.get_mut());
                    }
                }
            }
            Decompressor::Brotli(d) => {
                d.write_all(input).map_err(|e| corrupt(e.to_string()))?;
                if last {
                    d.flush().map_err(|e| corrupt(e.to_string()))?;
                }
                out.append(d.get_mut());
            }
            Decompressor::Zstd(d, pending, started) => {
                pending.extend_from_slice(input);
                if !*started && pending.len() < ZSTD_HEADER_MAX && !last {
                    return Ok(());
                }
                *started = true;
                let mut target = vec![0u8; 128 * 1024];
                loop {
                    // Concatenated frames: the next begins once this one is whole and all its
                    // output drained (a frame decoded at once may hold more than `target`),
                    // whether it starts in this chunk or a later one.
                    if d.is_finished() && d.can_collect() == 0 && !pending.is_empty() {
                        **d = ruzstd::decoding::FrameDecoder::new();
                        if pending.len() < ZSTD_HEADER_MAX && !last {
                            break;
                        }
                    }
                    let (read, written) = d
                        .decode_from_to(pending, &mut target)
                        .map_err(|e| corrupt(e.to_string()))?;
                    if read > pending.len() {
                        // ruzstd 0.8 answers (4, 0) while a frame's checksum has not fully
                        // arrived, having read none of it: wait for the rest (at the end of
                        // the body, a cut checksum leaves nothing more to decode).
                        break;
                    }
                    pending.drain(..read);
                    out.extend_from_slice(&target[..written]);
                    if read == 0 && written == 0 {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(encoding: &str, compressed: &[u8], expected: &[u8]) {
        for chunk_size in [1, 7, 100, compressed.len().max(1)] {
            let mut d = Decompressor::for_encoding(encoding).unwrap().unwrap();
            let mut out = Vec::new();
            let chunks: Vec<&[u8]> = compressed.chunks(chunk_size).collect();
            for (i, c) in chunks.iter().enumerate() {
                d.feed(c, i + 1 == chunks.len(), &mut out).unwrap();
            }
            assert_eq!(out, expected, "{encoding} in chunks of {chunk_size}");
        }
    }

    #[test]
    fn gzip_and_deflate_decode_in_any_chunking() {
        let text: Vec<u8> = b"my key is ghp_4f9Kx2mQ7pL1nR8sT3vW6yZ0aB5cD9eF2hJk ".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        roundtrip("gzip", &gz.finish().unwrap(), &text);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).unwrap();
        roundtrip("deflate", &z.finish().unwrap(), &text);
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&text).unwrap();
        roundtrip("deflate", &raw.finish().unwrap(), &text);
    }

    /// Found by fuzz/decompress: a frame's 4-byte checksum split across two chunks made
    /// ruzstd report more bytes read than it was given, and draining them panicked.
    #[test]
    fn zstd_decodes_with_its_checksum_split_across_chunks() {
        let text = b"my key is ghp_4f9Kx2mQ7pL1nR8sT3vW6yZ0aB5cD9eF2hJk";
        // `zstd -c` of the text: one frame, content checksum on.
        let frame: &[u8] = &[
            0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x91, 0x01, 0x00, 0x6d, 0x79, 0x20, 0x6b, 0x65,
            0x79, 0x20, 0x69, 0x73, 0x20, 0x67, 0x68, 0x70, 0x5f, 0x34, 0x66, 0x39, 0x4b, 0x78,
            0x32, 0x6d, 0x51, 0x37, 0x70, 0x4c, 0x31, 0x6e, 0x52, 0x38, 0x73, 0x54, 0x33, 0x76,
            0x57, 0x36, 0x79, 0x5a, 0x30, 0x61, 0x42, 0x35, 0x63, 0x44, 0x39, 0x65, 0x46, 0x32,
            0x68, 0x4a, 0x6b, 0x18, 0xcf, 0x56, 0x5c,
        ];
        roundtrip("zstd", frame, text);
        // Also found by it: a second frame starting exactly at a chunk's start was dropped
        // (the finished decoder read nothing more).
        let two = [frame, frame].concat();
        for cut in 1..two.len() {
            let mut d = Decompressor::for_encoding("zstd").unwrap().unwrap();
            let mut out = Vec::new();
            d.feed(&two[..cut], false, &mut out).unwrap();
            d.feed(&two[cut..], true, &mut out).unwrap();
            assert_eq!(out, [text.as_slice(), text].concat(), "cut at {cut}");
        }
    }

    /// A frame whose output outgrows one decode call's buffer, then another frame: the
    /// first is drained whole before the decoder moves on (the rest of it was dropped).
    #[test]
    fn zstd_drains_a_large_frame_before_the_next() {
        // `head -c 300000 /dev/zero | zstd -c`
        let zeros: &[u8] = &[
            0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x54, 0x00, 0x00, 0x10, 0x00, 0x00, 0x01, 0x00,
            0xfb, 0xff, 0x39, 0xc0, 0x02, 0x02, 0x00, 0x10, 0x00, 0x03, 0x9f, 0x04, 0x00, 0x2d,
            0x28, 0xde, 0x26,
        ];
        let mut d = Decompressor::for_encoding("zstd").unwrap().unwrap();
        let mut out = Vec::new();
        d.feed(&[zeros, zeros].concat(), true, &mut out).unwrap();
        assert_eq!(out.len(), 600_000);
        assert!(out.iter().all(|&b| b == 0));
    }

    #[test]
    fn unknown_encodings_are_refused() {
        assert!(Decompressor::for_encoding("compress").is_err());
        assert!(Decompressor::for_encoding("identity").unwrap().is_none());
    }
}

//! Decoding a GIF into what a viewer shows after each frame: the check that an encoded
//! animation plays as intended. Used by this crate's tests and by the integration tests
//! (`tests/countdown.rs`), so they all read GIFs the same way.

/// A decoded animation: straight RGBA canvases (transparent = 0), delays, loop extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub width: usize,
    pub height: usize,
    /// The picture after each frame, `width * height * 4` bytes each.
    pub canvases: Vec<Vec<u8>>,
    /// Each frame's delay in centiseconds.
    pub delays: Vec<u16>,
    /// The loop extension asks for endless repeats.
    pub loops_forever: bool,
    /// A NETSCAPE2.0 loop extension is present at all.
    pub has_loop_extension: bool,
    /// Entries in the global colour table.
    pub global_palette_len: usize,
    /// Frames carrying their own colour table.
    pub local_palettes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("gif decode: {0}")]
    Gif(#[from] ::gif::DecodingError),
    #[error("gif decode: frame {0} lies outside the canvas")]
    FrameOutside(usize),
}

/// Decodes `bytes`, composing the frames as a viewer does (keep or clear to the background).
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let mut opts = ::gif::DecodeOptions::new();
    opts.set_color_output(::gif::ColorOutput::RGBA);
    let mut d = opts.read_info(bytes)?;
    let (width, height) = (usize::from(d.width()), usize::from(d.height()));
    let global_palette_len = d.global_palette().map_or(0, <[u8]>::len) / 3;
    let mut canvas = vec![0u8; width * height * 4];
    let mut canvases = Vec::new();
    let mut delays = Vec::new();
    let mut local_palettes = 0;
    let mut pending_clear: Option<(usize, usize, usize, usize)> = None;
    while let Some(f) = d.read_next_frame()? {
        if let Some((l, t, fw, fh)) = pending_clear.take() {
            for y in t..t + fh {
                canvas[(y * width + l) * 4..(y * width + l + fw) * 4].fill(0);
            }
        }
        let (l, t) = (usize::from(f.left), usize::from(f.top));
        let (fw, fh) = (usize::from(f.width), usize::from(f.height));
        if l + fw > width || t + fh > height || f.buffer.len() < fw * fh * 4 {
            return Err(DecodeError::FrameOutside(canvases.len()));
        }
        for y in 0..fh {
            for x in 0..fw {
                let src = &f.buffer[(y * fw + x) * 4..][..4];
                if src[3] != 0 {
                    let at = ((t + y) * width + l + x) * 4;
                    canvas[at..at + 4].copy_from_slice(src);
                }
            }
        }
        local_palettes += usize::from(f.palette.is_some());
        canvases.push(canvas.clone());
        delays.push(f.delay);
        if f.dispose == ::gif::DisposalMethod::Background {
            pending_clear = Some((l, t, fw, fh));
        }
    }
    let has_loop_extension = bytes.windows(11).any(|w| w == b"NETSCAPE2.0");
    Ok(Decoded {
        width,
        height,
        canvases,
        delays,
        loops_forever: d.repeat() == ::gif::Repeat::Infinite,
        has_loop_extension,
        global_palette_len,
        local_palettes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(decode(b"not a gif").is_err());
        let still =
            crate::gif::encode_still(2, 1, &[255, 0, 0, 255, 0, 0, 255, 255]).expect("encodes");
        assert!(decode(&still[..still.len() / 2]).is_err());
        let d = decode(&still).expect("decodes");
        assert_eq!(d.canvases, vec![vec![255, 0, 0, 255, 0, 0, 255, 255]]);
    }
}

//! Writing: the planned frames, as indices into the global palette, LZW-compressed by the
//! `gif` crate (weezl).

use std::borrow::Cow;

use ::gif::{Encoder, Frame, Repeat};

use super::frame_plan::PlannedFrame;
use super::palette::Palette;
use super::{EncodedGif, GifError, Looping};

pub(super) fn write_gif(
    width: u16,
    height: u16,
    pal: &Palette,
    frames: &[PlannedFrame],
    looping: Looping,
) -> Result<EncodedGif, GifError> {
    let mut enc = Encoder::new(Vec::new(), width, height, &pal.rgb)?;
    if looping == Looping::Forever {
        enc.set_repeat(Repeat::Infinite)?;
    }
    for f in frames {
        // Rect sides are within the canvas, which fits u16. The `gif` crate LZW-compresses
        // the indices (weezl) with the smallest code size they allow.
        let frame = Frame {
            delay: f.delay,
            dispose: f.dispose,
            transparent: Some(pal.transparent),
            left: f.rect.x0 as u16,
            top: f.rect.y0 as u16,
            width: f.rect.width() as u16,
            height: (f.rect.y1 - f.rect.y0) as u16,
            palette: None,
            buffer: Cow::Borrowed(&f.pixels),
            ..Frame::default()
        };
        enc.write_frame(&frame)?;
    }
    let mut bytes = enc.into_inner()?;
    // Kept in the render cache, which weighs the length: no spare capacity held beyond it.
    bytes.shrink_to_fit();
    Ok(EncodedGif {
        bytes,
        frames: frames.len(),
    })
}

//! GIF encoding: one fixed palette for the whole animation and frames that only carry the
//! rectangle that changed.
//!
//! Input is RGBA in tiny-skia's premultiplied layout: a full first frame, then *patches*
//! (rectangles of new pixels over the previous picture). [`palette`] builds one palette from
//! every colour the frames use (exact when they fit, otherwise a weighted median cut, so there
//! is no per-frame quantization noise); `frame_plan` cuts each later frame down to the pixels
//! that really changed, in the form with fewer colour changes (unchanged pixels as the
//! transparent index, or every pixel in its own colour: LZW loves long runs), and folds frames
//! that change nothing into the previous frame's delay; `palette_order` gives the colours of
//! the later frames the low indices (narrower LZW codes); `write` hands the indexed frames to
//! the `gif` crate, whose LZW (weezl) compresses them. [`decode`] reads a GIF back into what a
//! viewer shows, for tests.
//!
//! This module depends on nothing else in the crate: countdowns (`crate::countdown`) feed it.

pub mod decode;
mod frame_plan;
mod palette;
mod palette_order;
#[cfg(test)]
mod testkit;
mod write;

use frame_plan::plan_frames;
use palette::Palette;
use palette_order::order_by_later_use;
use write::write_gif;

/// Largest canvas side we encode.
pub(crate) const MAX_SIDE: u32 = 4096;

/// A rectangle of new pixels in premultiplied RGBA (tiny-skia's `Pixmap::data` layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// `width * height * 4` bytes, rows top to bottom.
    pub rgba: Vec<u8>,
}

/// One animation step: paint `patch` over the current picture, then show it for `delay_cs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnimationFrame {
    pub(crate) patch: Patch,
    /// Display time in centiseconds (GIF's unit).
    pub(crate) delay_cs: u16,
}

/// Whether the animation restarts after its last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Looping {
    /// A NETSCAPE2.0 extension with a repeat count of 0 (forever).
    #[default]
    Forever,
    /// No loop extension: plays once and stays on the last frame.
    Once,
}

/// An encoded GIF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedGif {
    pub(crate) bytes: Vec<u8>,
    /// Frames in the file (after folding frames that changed nothing).
    pub(crate) frames: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GifError {
    #[error("gif: no frames")]
    NoFrames,
    #[error("gif: canvas size {0}x{1} out of range")]
    BadSize(u32, u32),
    #[error("gif: the first frame must cover the whole canvas")]
    FirstFrameNotFull,
    #[error("gif: frame {0} lies outside the canvas or has the wrong byte length")]
    BadPatch(usize),
    #[error("gif: {0}")]
    Encode(#[from] gif::EncodingError),
}

/// Encodes an animation of `width` × `height` pixels.
pub(crate) fn encode_animation(
    width: u32,
    height: u32,
    frames: &[AnimationFrame],
    looping: Looping,
) -> Result<EncodedGif, GifError> {
    let (w16, h16) = check_size(width, height)?;
    let first = frames.first().ok_or(GifError::NoFrames)?;
    if (
        first.patch.x,
        first.patch.y,
        first.patch.width,
        first.patch.height,
    ) != (0, 0, width, height)
    {
        return Err(GifError::FirstFrameNotFull);
    }
    for (i, f) in frames.iter().enumerate() {
        check_patch(&f.patch, width, height).ok_or(GifError::BadPatch(i))?;
    }
    let mut palette = Palette::build(frames.iter().map(|f| &f.patch));
    let mut planned = plan_frames(width, height, frames, &palette);
    order_by_later_use(&mut palette, &mut planned);
    write_gif(w16, h16, &palette, &planned, looping)
}

/// Encodes one still picture (the expired state, or the first frame for Outlook).
pub(crate) fn encode_still(width: u32, height: u32, rgba: &[u8]) -> Result<Vec<u8>, GifError> {
    let frame = AnimationFrame {
        patch: Patch {
            x: 0,
            y: 0,
            width,
            height,
            rgba: rgba.to_vec(),
        },
        delay_cs: 0,
    };
    Ok(encode_animation(width, height, std::slice::from_ref(&frame), Looping::Once)?.bytes)
}

fn check_size(width: u32, height: u32) -> Result<(u16, u16), GifError> {
    let ok = (1..=MAX_SIDE).contains(&width) && (1..=MAX_SIDE).contains(&height);
    match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) if ok => Ok((w, h)),
        _ => Err(GifError::BadSize(width, height)),
    }
}

fn check_patch(p: &Patch, width: u32, height: u32) -> Option<()> {
    let right = p.x.checked_add(p.width)?;
    let bottom = p.y.checked_add(p.height)?;
    let len = (p.width as usize)
        .checked_mul(p.height as usize)?
        .checked_mul(4)?;
    (p.width > 0 && p.height > 0 && right <= width && bottom <= height && p.rgba.len() == len)
        .then_some(())
}

#[cfg(test)]
mod tests {
    use super::decode::decode;
    use super::testkit::{frame, solid, BLUE, RED};
    use super::*;

    #[test]
    fn delays_loop_and_dirty_rects() {
        let frames = vec![
            frame(solid(0, 0, 20, 10, RED), 100),
            frame(solid(5, 2, 3, 3, BLUE), 100),
            frame(solid(0, 0, 20, 10, RED), 50),
        ];
        let gif = encode_animation(20, 10, &frames, Looping::Forever).expect("encodes");
        let d = decode(&gif.bytes).expect("decodes");
        assert_eq!(gif.frames, 3);
        assert_eq!(d.delays, vec![100, 100, 50]);
        assert!(d.loops_forever && d.has_loop_extension);
        assert_eq!(d.local_palettes, 0, "one global palette only");
        assert_eq!(&d.canvases[1][(3 * 20 + 6) * 4..][..4], &BLUE);
        assert_eq!(&d.canvases[1][(3 * 20 + 4) * 4..][..4], &RED);
        assert_eq!(d.canvases[2], d.canvases[0]);
        let once = encode_animation(20, 10, &frames, Looping::Once).expect("encodes");
        let d = decode(&once.bytes).expect("decodes");
        assert!(!d.has_loop_extension && !d.loops_forever);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(
            encode_animation(0, 10, &[], Looping::Once),
            Err(GifError::BadSize(0, 10))
        ));
        assert!(matches!(
            encode_animation(4, 4, &[], Looping::Once),
            Err(GifError::NoFrames)
        ));
        let small = vec![frame(solid(0, 0, 2, 2, RED), 0)];
        assert!(matches!(
            encode_animation(4, 4, &small, Looping::Once),
            Err(GifError::FirstFrameNotFull)
        ));
        let outside = vec![
            frame(solid(0, 0, 4, 4, RED), 0),
            frame(solid(3, 3, 2, 2, RED), 0),
        ];
        assert!(matches!(
            encode_animation(4, 4, &outside, Looping::Once),
            Err(GifError::BadPatch(1))
        ));
        assert!(encode_still(2, 2, &[0; 3]).is_err());
    }
}

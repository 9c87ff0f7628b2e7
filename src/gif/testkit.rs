//! Test support shared by this module's tests: solid patches and frames.

use super::{AnimationFrame, Patch};

pub(super) fn solid(x: u32, y: u32, w: u32, h: u32, px: [u8; 4]) -> Patch {
    Patch {
        x,
        y,
        width: w,
        height: h,
        rgba: px.repeat((w * h) as usize),
    }
}

pub(super) fn frame(patch: Patch, delay_cs: u16) -> AnimationFrame {
    AnimationFrame { patch, delay_cs }
}

pub(super) const RED: [u8; 4] = [255, 0, 0, 255];
pub(super) const BLUE: [u8; 4] = [0, 0, 255, 255];
pub(super) const CLEAR: [u8; 4] = [0, 0, 0, 0];

//! Playback: playlists of prompts and the cursor that walks them one 20 ms frame at
//! a time.
//!
//! A [`Playlist`] names prompts (several in a row, e.g. "your ticket number" + the
//! number's fragments) and may loop (hold music). The engine resolves the names once,
//! when `play` is called, into a [`Cursor`]; the per-leg session pulls one frame per
//! tick from it. Timing (the absolute 20 ms grid, RTP timestamps, the marker bit) is
//! the session's business, not the cursor's.

use std::sync::Arc;

use super::g711::Law;
use super::prompts::{Prompt, PromptError, PromptLibrary};

/// Prompts to play in a row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Playlist {
    /// Prompt names, relative to the prompts directory (`ru/queue-wait.wav`).
    pub items: Vec<String>,
    /// Start again from the first item after the last (hold music); a looping
    /// playlist never finishes on its own.
    pub looped: bool,
}

impl Playlist {
    /// One prompt, once.
    pub fn one(name: impl Into<String>) -> Self {
        Self {
            items: vec![name.into()],
            looped: false,
        }
    }

    /// Several prompts in a row, once.
    pub fn sequence<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            items: names.into_iter().map(Into::into).collect(),
            looped: false,
        }
    }

    /// The same playlist, looping.
    pub fn looping(mut self) -> Self {
        self.looped = true;
        self
    }

    /// Appends prompts (e.g. the fragments [`super::speech`] returns).
    pub fn then<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.items.extend(names.into_iter().map(Into::into));
        self
    }
}

/// A resolved playlist and the position in it.
#[derive(Debug, Clone)]
pub struct Cursor {
    prompts: Vec<Arc<Prompt>>,
    looped: bool,
    item: usize,
    frame: usize,
}

impl Cursor {
    /// Resolves every name against `library`; an unknown name is an error.
    pub fn new(playlist: &Playlist, library: &PromptLibrary) -> Result<Self, PromptError> {
        let prompts = playlist
            .items
            .iter()
            .map(|n| library.get(n))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_prompts(prompts, playlist.looped))
    }

    /// A cursor over already-resolved prompts.
    pub fn from_prompts(prompts: Vec<Arc<Prompt>>, looped: bool) -> Self {
        Self {
            prompts,
            looped,
            item: 0,
            frame: 0,
        }
    }

    /// The next frame in `law`, or `None` when the playlist is over.
    pub fn next_frame(&mut self, law: Law) -> Option<&[u8]> {
        let total: usize = self.prompts.iter().map(|p| p.frames()).sum();
        if total == 0 {
            return None;
        }
        loop {
            if self.item >= self.prompts.len() {
                if !self.looped {
                    return None;
                }
                self.item = 0;
            }
            let prompt = self.prompts.get(self.item)?;
            if self.frame < prompt.frames() {
                let i = self.frame;
                self.frame += 1;
                return self.prompts.get(self.item)?.frame(law, i);
            }
            self.item += 1;
            self.frame = 0;
        }
    }

    /// Skips `n` frames (the driver fell behind and drops rather than bursts).
    pub fn skip(&mut self, law: Law, n: usize) {
        for _ in 0..n {
            if self.next_frame(law).is_none() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_in_order_and_loops() {
        let mut lib = PromptLibrary::empty();
        lib.insert(Prompt::from_samples("a", &[100; 320]));
        lib.insert(Prompt::from_samples("b", &[-100; 160]));
        let mut c = Cursor::new(&Playlist::sequence(["a", "b"]), &lib).unwrap();
        let mut n = 0;
        while c.next_frame(Law::A).is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
        let mut l = Cursor::new(&Playlist::one("b").looping(), &lib).unwrap();
        for _ in 0..10 {
            assert!(l.next_frame(Law::Mu).is_some());
        }
        assert!(Cursor::new(&Playlist::one("zzz"), &lib).is_err());
    }
}

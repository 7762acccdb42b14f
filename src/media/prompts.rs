//! Prompts: WAV files under `ivr-prompts/`, checked and pre-encoded once.
//!
//! Owns the prompt format rule (RIFF WAVE, PCM, 8 kHz, 16-bit, mono — nothing else is
//! played or resampled) and the [`PromptLibrary`] the engine plays from. Every prompt
//! is encoded to both PCMA and PCMU at load time and padded with silence to whole
//! 20 ms frames, so playback is a slice copy per packet. A malformed file is an error
//! naming the file and what is wrong with it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::g711::{self, Law};

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// The only sample rate prompts may have.
pub const SAMPLE_RATE: u32 = 8000;

/// Why a prompt cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a WAV file the engine plays.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. "sample rate is 16000 Hz, prompts must be 8000 Hz".
        reason: String,
    },
    /// The data chunk ends before the length its header gives.
    #[error("{path}: truncated: header promises {expected} samples, file holds {found}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Samples announced by the header.
        expected: u32,
        /// Samples present.
        found: u32,
    },
    /// No prompt of that name is loaded.
    #[error("no prompt named `{0}`")]
    Unknown(String),
    /// Several files are bad (library load); each line names one.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Several(Vec<PromptError>),
    /// The prompt check `check-config` runs failed (bad or missing prompts); one
    /// message per fault, as `check-config` prints them.
    #[error("{}", .0.join("\n"))]
    Checks(Vec<String>),
}

fn format_err(path: &Path, reason: impl Into<String>) -> PromptError {
    PromptError::Format {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Reads and checks one prompt file; returns its samples.
pub fn read_samples(path: &Path) -> Result<Vec<i16>, PromptError> {
    // Open first so "cannot read the file" is told apart from "not a WAV file".
    let file = std::fs::File::open(path).map_err(|source| PromptError::Io {
        path: path.to_owned(),
        source,
    })?;
    let reader = hound::WavReader::new(std::io::BufReader::new(file)).map_err(|e| {
        let why = match e {
            hound::Error::IoError(_) => "the header is truncated".to_owned(),
            other => other.to_string(),
        };
        format_err(path, format!("not a WAV file the engine can read: {why}"))
    })?;
    let spec = reader.spec();
    let mut faults = Vec::new();
    if spec.sample_rate != SAMPLE_RATE {
        faults.push(format!(
            "sample rate is {} Hz, prompts must be {SAMPLE_RATE} Hz",
            spec.sample_rate
        ));
    }
    if spec.channels != 1 {
        faults.push(format!("{} channels, prompts must be mono", spec.channels));
    }
    if spec.bits_per_sample != 16 || spec.sample_format != hound::SampleFormat::Int {
        let kind = match spec.sample_format {
            hound::SampleFormat::Int => "integer",
            hound::SampleFormat::Float => "float",
        };
        faults.push(format!(
            "{}-bit {kind} samples, prompts must be 16-bit integer PCM",
            spec.bits_per_sample
        ));
    }
    if !faults.is_empty() {
        return Err(format_err(path, faults.join("; ")));
    }
    let expected = reader.len();
    let mut samples = Vec::with_capacity(expected as usize);
    for s in reader.into_samples::<i16>() {
        match s {
            Ok(v) => samples.push(v),
            Err(_) => break,
        }
    }
    if (samples.len() as u32) < expected {
        return Err(PromptError::Truncated {
            path: path.to_owned(),
            expected,
            found: samples.len() as u32,
        });
    }
    if samples.is_empty() {
        return Err(format_err(path, "holds no audio"));
    }
    Ok(samples)
}

/// Checks one file for `check-config`: `Ok` when the engine can play it.
pub fn check_file(path: &Path) -> Result<(), PromptError> {
    read_samples(path).map(|_| ())
}

/// One prompt, encoded in both G.711 laws, padded to whole 20 ms frames.
pub struct Prompt {
    name: String,
    pcmu: Vec<u8>,
    pcma: Vec<u8>,
}

impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prompt")
            .field("name", &self.name)
            .field("frames", &self.frames())
            .finish()
    }
}

impl Prompt {
    /// Encodes samples (8 kHz mono) under `name`.
    pub fn from_samples(name: impl Into<String>, samples: &[i16]) -> Self {
        let frames = samples.len().div_ceil(FRAME_SAMPLES).max(1);
        let mut padded = samples.to_vec();
        padded.resize(frames * FRAME_SAMPLES, 0);
        let mut pcmu = Vec::with_capacity(padded.len());
        let mut pcma = Vec::with_capacity(padded.len());
        g711::encode_into(Law::Mu, &padded, &mut pcmu);
        g711::encode_into(Law::A, &padded, &mut pcma);
        Self {
            name: name.into(),
            pcmu,
            pcma,
        }
    }

    /// The name it was loaded under (`ru/greeting-etalon.wav`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of 20 ms frames.
    pub fn frames(&self) -> usize {
        self.pcmu.len() / FRAME_SAMPLES
    }

    /// Playing time.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.frames() as u64 * 20)
    }

    /// Frame `i` (160 code words) in `law`, if the prompt is that long.
    pub fn frame(&self, law: Law, i: usize) -> Option<&[u8]> {
        let all = match law {
            Law::Mu => &self.pcmu,
            Law::A => &self.pcma,
        };
        all.get(i * FRAME_SAMPLES..(i + 1) * FRAME_SAMPLES)
    }
}

/// Every prompt under a directory, by relative name (`ru/queue-wait.wav`).
#[derive(Debug, Default)]
pub struct PromptLibrary {
    root: PathBuf,
    prompts: HashMap<String, Arc<Prompt>>,
}

impl PromptLibrary {
    /// An empty library (tests add prompts with [`insert`](Self::insert)).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads every `*.wav` under `dir` (recursively). Any bad file fails the load, and
    /// the error lists every bad file.
    pub fn load(dir: &Path) -> Result<Self, PromptError> {
        let (lib, mut faults) = Self::load_all(dir)?;
        match faults.len() {
            0 => Ok(lib),
            1 => Err(faults.remove(0)),
            _ => Err(PromptError::Several(faults)),
        }
    }

    /// Loads every good `*.wav` under `dir` and returns the bad ones beside, so a
    /// check can report bad and missing files together. Fails only when a directory
    /// cannot be read.
    pub fn load_all(dir: &Path) -> Result<(Self, Vec<PromptError>), PromptError> {
        let mut lib = Self {
            root: dir.to_owned(),
            prompts: HashMap::new(),
        };
        let mut faults = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d).map_err(|source| PromptError::Io {
                path: d.clone(),
                source,
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
                {
                    let Some(name) = relative_name(dir, &path) else {
                        continue;
                    };
                    match read_samples(&path) {
                        Ok(samples) => {
                            lib.insert(Prompt::from_samples(name, &samples));
                        }
                        Err(e) => faults.push(e),
                    }
                }
            }
        }
        faults.sort_by_key(|e| e.to_string());
        Ok((lib, faults))
    }

    /// Adds (or replaces) a prompt under its name.
    pub fn insert(&mut self, prompt: Prompt) {
        self.prompts.insert(prompt.name.clone(), Arc::new(prompt));
    }

    /// A prompt by relative name.
    pub fn get(&self, name: &str) -> Result<Arc<Prompt>, PromptError> {
        self.prompts
            .get(name)
            .cloned()
            .ok_or_else(|| PromptError::Unknown(name.to_owned()))
    }

    /// Whether a prompt of that name is loaded.
    pub fn contains(&self, name: &str) -> bool {
        self.prompts.contains_key(name)
    }

    /// Number of prompts loaded.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// Whether the library is empty.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// The directory it was loaded from.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// `dir/ru/x.wav` → `ru/x.wav`, with `/` separators on every platform.
fn relative_name(dir: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(dir).ok()?;
    let parts: Option<Vec<&str>> = rel.iter().map(|p| p.to_str()).collect();
    Some(parts?.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_padded_and_encoded_in_both_laws() {
        let p = Prompt::from_samples("x", &[1000; 200]);
        assert_eq!(p.frames(), 2);
        assert_eq!(p.frame(Law::A, 0).unwrap().len(), 160);
        assert_eq!(p.frame(Law::Mu, 1).unwrap()[100], g711::linear_to_ulaw(0));
        assert!(p.frame(Law::A, 2).is_none());
    }

    #[test]
    fn the_shipped_prompts_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts");
        let lib = PromptLibrary::load(&dir).unwrap();
        for name in [
            "ru/greeting-etalon.wav",
            "ru/greeting-uyut.wav",
            "ru/greeting-citywide.wav",
            "ru/number-changed.wav",
            "ru/queue-wait.wav",
            "ru/hold-music.wav",
            "ru/callback-promise.wav",
            "ru/num/thousand-5.wav",
        ] {
            assert!(lib.contains(name), "{name}");
        }
        let music = lib.get("ru/hold-music.wav").unwrap();
        assert!(music.duration() >= std::time::Duration::from_secs(20));
    }
}

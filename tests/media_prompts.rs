//! Prompt format checks: anything but 8 kHz, 16-bit, mono PCM WAV is refused with an
//! error that names the file and what is wrong, both through the media API and
//! through `check-config`'s prompt check.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use dispatchline::config::Config;
use dispatchline::media::prompts::{self, PromptError, PromptLibrary};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dl-prompts-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("ru")).unwrap();
    dir
}

fn write_wav(path: &Path, rate: u32, channels: u16, bits: u16, samples: usize) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..samples * usize::from(channels) {
        match bits {
            8 => w.write_sample((i % 100) as i8).unwrap(),
            _ => w.write_sample((i % 1000) as i16).unwrap(),
        }
    }
    w.finalize().unwrap();
}

#[test]
fn wrong_formats_are_named() {
    let dir = scratch("formats");
    let good = dir.join("ru/good.wav");
    write_wav(&good, 8000, 1, 16, 1600);
    prompts::check_file(&good).unwrap();

    let cases = [
        (
            "rate.wav",
            16000,
            1,
            16,
            "sample rate is 16000 Hz, prompts must be 8000 Hz",
        ),
        (
            "stereo.wav",
            8000,
            2,
            16,
            "2 channels, prompts must be mono",
        ),
        (
            "eight.wav",
            8000,
            1,
            8,
            "8-bit integer samples, prompts must be 16-bit",
        ),
    ];
    for (name, rate, ch, bits, want) in cases {
        let path = dir.join("ru").join(name);
        write_wav(&path, rate, ch, bits, 800);
        let err = prompts::check_file(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&*path.to_string_lossy()), "{text}");
        assert!(text.contains(want), "{text}");
    }

    // Truncated: a valid file with the end of its data chunk cut off.
    let cut = dir.join("ru/cut.wav");
    write_wav(&cut, 8000, 1, 16, 1600);
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let err = prompts::check_file(&cut).unwrap_err();
    assert!(
        matches!(
            err,
            PromptError::Truncated {
                expected: 1600,
                found: 1100,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cut.wav"), "{err}");

    // Not a WAV at all, and a header cut short.
    let junk = dir.join("ru/junk.wav");
    std::fs::write(&junk, b"this is not a wave file").unwrap();
    let err = prompts::check_file(&junk).unwrap_err().to_string();
    assert!(
        err.contains("junk.wav") && err.contains("not a WAV"),
        "{err}"
    );
    let stub = dir.join("ru/stub.wav");
    std::fs::write(&stub, &bytes[..20]).unwrap();
    let err = prompts::check_file(&stub).unwrap_err().to_string();
    assert!(
        err.contains("stub.wav") && err.contains("not a WAV"),
        "{err}"
    );

    // Loading the directory lists every bad file at once.
    let err = PromptLibrary::load(&dir).unwrap_err().to_string();
    for bad in [
        "rate.wav",
        "stereo.wav",
        "eight.wav",
        "cut.wav",
        "junk.wav",
        "stub.wav",
    ] {
        assert!(err.contains(bad), "{bad} missing from: {err}");
    }
    assert!(!err.contains("good.wav"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_config_reports_bad_prompt_formats() {
    let dir = scratch("config");
    for name in [
        "greeting-citywide",
        "number-changed",
        "queue-wait",
        "callback-promise",
    ] {
        write_wav(&dir.join(format!("ru/{name}.wav")), 8000, 1, 16, 800);
    }
    // Hold music recorded at CD quality by mistake.
    write_wav(&dir.join("ru/hold-music.wav"), 44100, 2, 16, 800);
    let mut config = Config::empty();
    config.media.prompts_dir = dir.clone();
    let faults = dispatchline::server::check_prompts(&config).unwrap_err();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert!(faults[0].contains("ru/hold-music.wav"), "{faults:?}");
    assert!(faults[0].contains("44100 Hz"), "{faults:?}");
    assert!(faults[0].contains("mono"), "{faults:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_default_configuration_prompts_pass_check_config() {
    let mut config = Config::empty();
    config.media.prompts_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts");
    dispatchline::server::check_prompts(&config).unwrap();
}

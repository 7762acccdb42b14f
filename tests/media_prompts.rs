//! Prompt format checks: anything but 8 kHz, 16-bit, mono PCM WAV is refused with an
//! error that names the file and what is wrong, both through the media API and
//! through `check-config`'s prompt check; that check and `serve` agree: any bad WAV
//! under the directory and any prompt the engine plays by fixed name (outage and
//! debt parts, number fragments) that is missing are faults for both.

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

/// A copy of the shipped prompts with the hold music recorded at CD quality by
/// mistake, one fixed prompt and one number fragment missing, and a stray bad WAV no
/// configuration names.
fn broken_library(name: &str) -> PathBuf {
    let dir = scratch(name);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts");
    let mut stack = vec![shipped.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(&shipped).unwrap();
            if p.is_dir() {
                std::fs::create_dir_all(dir.join(rel)).unwrap();
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "wav") {
                std::fs::copy(&p, dir.join(rel)).unwrap();
            }
        }
    }
    write_wav(&dir.join("ru/hold-music.wav"), 44100, 2, 16, 800);
    std::fs::remove_file(dir.join("ru/debt-outro.wav")).unwrap();
    std::fs::remove_file(dir.join("ru/unit/kopeck-2.wav")).unwrap();
    std::fs::create_dir_all(dir.join("ru/old")).unwrap();
    write_wav(&dir.join("ru/old/unused.wav"), 16000, 1, 16, 800);
    dir
}

fn expect_faults(faults: &[String]) {
    let has = |what: &[&str]| faults.iter().any(|f| what.iter().all(|w| f.contains(w)));
    assert!(
        has(&["ru/hold-music.wav", "44100 Hz", "mono"]),
        "{faults:?}"
    );
    // Played by fixed name: before, the amount was said without «копейки» and the
    // debt notice without its end, silently.
    assert!(has(&["ru/debt-outro.wav", "not found"]), "{faults:?}");
    assert!(has(&["ru/unit/kopeck-2.wav", "not found"]), "{faults:?}");
    // Named by nothing, but `serve`'s library load refuses it: so does the check.
    assert!(has(&["ru/old/unused.wav", "16000 Hz"]), "{faults:?}");
    assert_eq!(faults.len(), 4, "{faults:?}");
}

#[test]
fn check_config_reports_bad_and_missing_prompts_anywhere() {
    let dir = broken_library("config");
    let mut config = Config::empty();
    config.media.prompts_dir = dir.clone();
    let faults = dispatchline::server::check_prompts(&config).unwrap_err();
    expect_faults(&faults);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn serve_refuses_to_start_with_the_same_faults() {
    let dir = broken_library("serve");
    let mut config = Config::empty();
    config.media.prompts_dir = dir.clone();
    config.sip.listen = "127.0.0.1:0".parse().unwrap();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.database.url = format!("sqlite://{}/db.sqlite", dir.display());
    let err = dispatchline::server::Engine::start(config)
        .await
        .unwrap_err();
    let text = err.to_string();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    expect_faults(&lines);
    assert_eq!(
        lines,
        {
            let mut c = Config::empty();
            c.media.prompts_dir = dir.clone();
            dispatchline::server::check_prompts(&c).unwrap_err()
        },
        "check-config and serve say the same"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_default_configuration_prompts_pass_check_config() {
    let mut config = Config::empty();
    config.media.prompts_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts");
    dispatchline::server::check_prompts(&config).unwrap();
}

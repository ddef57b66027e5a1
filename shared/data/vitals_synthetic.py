"""Synthetic bedside vitals shaped like a ward's: rare, gradual deterioration in noisy,
irregular, incomplete measurements from hospitals whose baselines differ.

Each patient belongs to one of `hospitals` sites and is observed from admission (time 0, in
hours) to the prediction time, a stay of 0.3–1.5 × the window (`sequence_length` ×
`sequence_step` hours; longer stays are cut to the window by the loader, shorter ones padded).
Vitals are taken in rounds at irregular times (gaps drawn from an exponential distribution,
mean `sequence_step`); in each round every channel is missing with probability
`MISSING_RATE`. A reading is the patient's baseline (normal value + the site's shift + the
patient's own offset) + a slow physiological fluctuation + measurement noise.

About `PREVALENCE` of the patients deteriorate (label 1): from an onset at a random time in
the stay, a random subset of the channels drifts gradually (heart and respiratory rate up,
SpO2 and systolic pressure down) until the prediction time. Stable patients (label 0) are
not all flat: some recover from an abnormal admission, some have a transient episode that
resolves. The difficulty is fixed by these constants (docs/datasets.md records the check:
a logistic regression on per-patient summaries scores AUROC ≤ 0.80).

The output is long format (patient, time, channel, value, label, hospital): the same frame a
hospital's CSV gives, so generated and real data go through one resampling path
(`sequences.vitals_to_grid`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medfed.shared.errors import ConfigError

SYNTHETIC_CHANNELS = ["heart_rate", "resp_rate", "spo2", "systolic_bp"]
NORMAL = np.array([80.0, 17.0, 96.5, 125.0])  # bpm, /min, %, mmHg
PATIENT_SD = np.array([11.0, 2.5, 1.6, 14.0])  # between patients (age, chronic disease, drugs)
SITE_SD = np.array([5.0, 1.2, 0.8, 7.0])  # between hospitals (population, devices, protocols)
NOISE_SD = np.array([7.0, 2.2, 1.3, 10.0])  # one reading (movement, device, observer)
WANDER_SD = np.array([5.0, 1.5, 0.8, 7.0])  # slow fluctuation (AR(1), correlation ≈ 4 h)
WANDER_HOURS = 4.0
DRIFT = np.array([40.0, 10.0, -7.0, -40.0])  # a fully developed deterioration, per channel
# Deterioration patterns (direction per channel: heart rate, resp rate, SpO2, systolic), as
# multiples of DRIFT. Rates and pressure move either way (NEWS2 scores both directions):
# sepsis/shock, respiratory failure, opioid narcosis, raised intracranial pressure.
PATTERNS = np.array(
    [
        [1.0, 1.0, 0.3, 1.0],  # sepsis: HR ↑, RR ↑, SBP ↓
        [0.6, 1.0, 1.0, 0.0],  # respiratory failure: RR ↑, SpO2 ↓, HR ↑
        [-0.7, -1.0, 1.0, 0.3],  # opioid narcosis: RR ↓, SpO2 ↓, HR ↓
        [-1.0, -0.3, 0.0, -1.0],  # raised intracranial pressure: HR ↓, SBP ↑ (Cushing)
    ]
)
DRIFT_HOURS = 6.0  # hours from onset to a fully developed drift (then it keeps going)
ONSET_HOURS = (4.0, 18.0)  # how long before the prediction time the deterioration began
PREVALENCE = 0.10
MISSING_RATE = 0.20
RECOVERING = 0.25  # stable patients admitted unwell who improve
TRANSIENT = 0.20  # stable patients with a resolving episode (pain, fever)
STAY = (0.3, 1.5)  # stay length as a multiple of the window


def synthetic_vitals(
    samples: int,
    sequence_length: int,
    channels: int,
    seed: int,
    hospitals: int = 1,
    sequence_step: float = 1.0,
) -> pd.DataFrame:
    """Long-format measurements of `samples` patients over the first `channels` vitals.

    Raises:
        ConfigError: more channels than the generator simulates.
    """
    if not 1 <= channels <= len(SYNTHETIC_CHANNELS):
        raise ConfigError(
            f"data.sequence_features = {channels}: the generator simulates 1 to "
            f"{len(SYNTHETIC_CHANNELS)} vitals ({', '.join(SYNTHETIC_CHANNELS)})"
        )
    rng = np.random.default_rng(seed)
    window = sequence_length * sequence_step
    site_shift = rng.normal(0, 1, (hospitals, 4)) * SITE_SD
    names = np.array(SYNTHETIC_CHANNELS[:channels])
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("patient", "time", "channel")}
    columns |= {"value": [], "label": [], "hospital": []}
    for patient in range(samples):
        site = int(rng.integers(hospitals))
        label = int(rng.random() < PREVALENCE)
        times = _round_times(rng, rng.uniform(*STAY) * window, sequence_step)
        values = (_trajectory(rng, times, label) + site_shift[site])[:, :channels]
        rows, cols = np.nonzero(rng.random(values.shape) >= MISSING_RATE)
        columns["patient"].append(np.full(len(rows), f"s{seed}-{patient:05d}"))
        columns["time"].append(np.round(times[rows], 3))
        columns["channel"].append(names[cols])
        columns["value"].append(np.round(values[rows, cols], 1))
        columns["label"].append(np.full(len(rows), label))
        columns["hospital"].append(np.full(len(rows), f"hospital_{site}"))
    return pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})


def _round_times(rng: np.random.Generator, stay: float, step: float) -> np.ndarray:
    """Irregular round times in [0, stay], ending at the prediction time `stay`."""
    gaps = rng.exponential(step, size=int(4 * stay / step) + 8)
    times = np.cumsum(np.concatenate([[0.0], gaps]))
    return np.append(times[times < stay], stay)


def _trajectory(rng: np.random.Generator, times: np.ndarray, label: int) -> np.ndarray:
    """One patient's readings (rounds × 4 channels) before the site's shift."""
    baseline = NORMAL + rng.normal(0, 1, 4) * PATIENT_SD
    stay = times[-1]
    # Slow fluctuation: an AR(1) (Ornstein-Uhlenbeck) process sampled at the round times,
    # exact for any gaps: w_i = Σ_{j ≤ i} e_j · exp(−(t_i − t_j) / τ), e_0 ~ N(0, σ²) and
    # e_j ~ N(0, σ² (1 − exp(−2 (t_j − t_{j−1}) / τ))).
    keep = np.exp(-np.diff(times, prepend=-np.inf) / WANDER_HOURS)[:, None]
    shocks = rng.normal(0, 1, (len(times), 4)) * WANDER_SD * np.sqrt(1 - keep**2)
    lag = times[:, None] - times[None, :]
    decay = np.where(lag >= 0, np.exp(-np.clip(lag, 0, None) / WANDER_HOURS), 0.0)
    wander = decay @ shocks
    course = np.zeros((len(times), 4))
    if label:
        onset = stay - rng.uniform(*ONSET_HOURS)  # may precede admission
        pattern = PATTERNS[rng.integers(len(PATTERNS))] * (rng.random(4) < 0.7)
        severity = rng.uniform(0.5, 1.3)
        ramp = np.clip(times - onset, 0, None)[:, None] / DRIFT_HOURS
        course = ramp * DRIFT * pattern * severity
    else:
        kind = rng.random()
        pattern = PATTERNS[rng.integers(len(PATTERNS))] * (rng.random(4) < 0.7)
        if kind < RECOVERING:  # admitted unwell, improving: a deterioration pattern decaying
            start = DRIFT * pattern * rng.uniform(0.5, 1.3)
            course = start * np.exp(-times / rng.uniform(3, 10))[:, None]
        elif kind < RECOVERING + TRANSIENT:  # an episode that peaks and resolves
            peak, width = rng.uniform(0, stay), rng.uniform(1.5, 4)
            bump = np.exp(-0.5 * ((times - peak) / width) ** 2)[:, None]
            course = bump * DRIFT * pattern * rng.uniform(0.4, 1.0)
    noise = rng.normal(0, 1, (len(times), 4)) * NOISE_SD
    return baseline + wander + course + noise

"""Privacy: Opacus-based accounting, noise calibration, and (later) the signed ledger."""

from medfed.shared.privacy.accounting import epsilon_of, make_accountant
from medfed.shared.privacy.calibrate import NoiseCalibrator, calibrate_noise

__all__ = ["NoiseCalibrator", "calibrate_noise", "epsilon_of", "make_accountant"]

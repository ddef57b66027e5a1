"""Privacy: Opacus-based accounting, noise calibration, and (later) the signed ledger."""

from medfed.shared.privacy.accounting import calibrate_noise, epsilon_of, make_accountant

__all__ = ["calibrate_noise", "epsilon_of", "make_accountant"]

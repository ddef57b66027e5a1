"""The hospital's ClientApp as a deployed SuperNode runs it (`medfed.client.deployed_app:app`).

The hospital's data and settings come from the SuperNode's node config (`medfed-client`
writes it; see `medfed.client.node_hospital`). Under `medfed-client` the app runs in forks of
the hospital's warm executor (`medfed.client.executor`), which loaded `hospital_loader`'s data
before forking; under a plain `flower-supernode` it works the same, only slower (every message
imports torch and Opacus and reads the data cache in a fresh process).
"""

from medfed.client.client_app import build_client_app
from medfed.client.node_hospital import NodeHospital

hospital_loader = NodeHospital()
app = build_client_app(hospital_loader)

"""The hospital's ClientApp as a deployed SuperNode runs it (`medfed.client.deployed_app:app`).

The hospital's data and settings come from the SuperNode's node config (`medfed-client`
writes it; see `medfed.client.node_hospital`). Under `medfed-client` the app runs in forks of
the hospital's warm executor (`medfed.client.executor`), which loaded `hospital_loader`'s data
before forking, and each fork refuses code from the coordinator's app bundle
(`medfed.client.app_bundle`). A plain `flower-supernode` can run this app too, but that is
UNSAFE: Flower then imports whatever ClientApp the coordinator's bundle names, medfed's or not,
so the coordinator can run code at the hospital; use `medfed-client`.
"""

from medfed.client.client_app import build_client_app
from medfed.client.node_hospital import NodeHospital

hospital_loader = NodeHospital()
app = build_client_app(hospital_loader)

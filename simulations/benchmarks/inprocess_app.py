"""medfed's DP ClientApp inside the `flwr-clientapp` process: Flower's default path.

The deployment benchmark's comparison row: every message imports torch + Opacus and loads the
hospital's data afresh in the process the SuperNode starts for it (medfed deploys the relay in
`medfed.client.deployed_app` instead, which hands the message to the hospital's warm worker).
"""

from medfed.client.client_app import build_client_app
from medfed.client.node_hospital import NodeHospital

app = build_client_app(NodeHospital())

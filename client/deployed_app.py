"""The hospital's ClientApp as a deployed SuperNode runs it (`medfed.client.deployed_app:app`).

The SuperNode starts a fresh process per message, so this app imports only Flower and the
standard library and hands each message to the hospital's warm worker (`medfed.client.worker`,
started by `medfed-client`), which holds torch, Opacus, the data and the ledger. If the worker
is down the coordinator gets a typed `hospital_unavailable` reply, never a traceback.
"""

from __future__ import annotations

import logging
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
from pathlib import Path

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp

from medfed.shared.errors import HospitalUnavailable
from medfed.shared.protocol import Outcome, reply_content

log = logging.getLogger("medfed.client")
SOCKET_KEY, AUTHKEY_KEY = "worker-socket", "worker-key"  # also written by medfed-client


def ask_worker(message_type: str, content: RecordDict, context: Context) -> RecordDict:
    """The worker's reply content; the worker's updated node state replaces `context.state`.

    Raises:
        HospitalUnavailable: no worker to ask, or it died before answering.
    """
    try:
        socket = str(context.node_config[SOCKET_KEY])
        authkey = Path(str(context.node_config[AUTHKEY_KEY])).read_bytes()
        with Client(socket, family="AF_UNIX", authkey=authkey) as connection:
            connection.send((message_type, content, context))
            reply, state = connection.recv()
    except KeyError as missing:
        raise HospitalUnavailable(
            f"SuperNode --node-config lacks {missing} (start the hospital with medfed-client)"
        ) from None
    except (OSError, EOFError, AuthenticationError) as error:
        raise HospitalUnavailable(
            f"the hospital's worker is not answering ({type(error).__name__}); "
            "restart medfed-client"
        ) from None
    if isinstance(state, RecordDict):
        context.state = state
    return reply


def _relay(msg: Message, context: Context) -> Message:
    try:
        content = ask_worker(msg.metadata.message_type, msg.content, context)
    except HospitalUnavailable as error:
        log.error("%s", error)
        name = str(context.node_config.get("name", f"node {context.node_id}"))
        content = reply_content(Outcome.from_error(name, error))
    return Message(content, reply_to=msg)


app = ClientApp()
app.train()(_relay)
app.evaluate()(_relay)
app.query()(_relay)

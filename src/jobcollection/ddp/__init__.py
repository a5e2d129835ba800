"""DDP, sans I/O (docs/protocol.md): the Meteor websocket protocol as pure state machines.

Nothing here touches a socket, a task or a clock: the drivers (`server/session.py`,
`client/ddp.py`) feed it frames and the current time and send what it returns, in the style of
h11 and websockets' protocol layer.

- `messages`: the message shapes, the versions we speak and the parsers of requests;
- `framing`: one frame of EJSON text ↔ one message (with the server's strict checks);
- `heartbeat`: when to ping and when a silent peer counts as gone (both ends);
- `server`: one connection seen from the server (handshake, pings, requests to run);
- `client`: one connection seen from a client (handshake and version retry, outstanding
  methods, subscriptions);
- `cache`: the client's local copy of published documents (data messages applied).

It imports only the standard library, `jobcollection.core` and `jobcollection.errors`.
"""

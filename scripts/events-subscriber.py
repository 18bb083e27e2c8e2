#!/usr/bin/python3
"""Print a Morph controller's events, decoded: an example third-party consumer of the events stream.

Uses only Debian's python3-zmq and python3-flatbuffers plus the modules `flatc --python` generates from
schemas/*.fbs (the build puts them in <build>/python). Run it with /usr/bin/python3:

  scripts/events-subscriber.py --endpoint tcp://127.0.0.1:7713 \
      --server-key keys/controller.pub --key keys/tenant1.key --topic kpi. --topic host.

With --api it follows the Clone pattern: on a gap in the event sequence or a controller restart (new
incarnation) it asks the api endpoint for a snapshot and prints what the snapshot holds. Gaps are only
meaningful when subscribed to every topic (the default), since seq counts events across all topics.
"""
import argparse
import os
import sys
import time


def load_generated(python_dir):
    sys.path.insert(0, python_dir)
    global MarketEvent, MarketEventBody, KpiUpdate, HostChange, ShiftEvent, PriceUpdate, BidOutcome
    global AllocationChange, ApiRequest, ApiRequestBody, ApiReply, SnapshotReply, SnapshotRequest
    from morph.v1 import MarketEvent, MarketEventBody, KpiUpdate, HostChange, ShiftEvent, PriceUpdate  # noqa
    from morph.v1 import BidOutcome, AllocationChange, ApiRequest, ApiRequestBody, ApiReply  # noqa
    from morph.v1 import SnapshotReply, SnapshotRequest  # noqa


def read_key_file(path, field):
    """NAME.pub holds the Z85 public key; NAME.key holds 'public <z85>' and 'secret <z85>' lines."""
    with open(path) as f:
        words = f.read().split()
    if field in words:
        return words[words.index(field) + 1].encode()
    return words[0].encode()


def apply_curve(sock, args):
    if not args.server_key:
        return
    if not args.key:
        sys.exit("--server-key needs --key (this client's NAME.key)")
    mode = os.stat(args.key).st_mode
    if mode & 0o077:
        sys.exit(f"secret key file {args.key} is readable by group or others; chmod 600 it")
    sock.curve_serverkey = read_key_file(args.server_key, "public")
    sock.curve_publickey = read_key_file(args.key, "public")
    sock.curve_secretkey = read_key_file(args.key, "secret")


def body_name(enum_cls, value):
    for k, v in vars(enum_cls).items():
        if v == value and not k.startswith("_"):
            return k
    return f"unknown({value})"


def describe(topic, ev):
    kind = body_name(MarketEventBody.MarketEventBody, ev.BodyType())
    tab = ev.Body()
    line = f"seq={ev.Seq()} topic={topic} type={kind}"
    if kind == "KpiUpdate":
        u = KpiUpdate.KpiUpdate()
        u.Init(tab.Bytes, tab.Pos)
        r = u.ReportNestedRoot()
        cpu = sum(r.Vms(i).CpuRunNs() for i in range(r.VmsLength()))
        line += f" host={r.Host().decode()} report_seq={r.Seq()} vms={r.VmsLength()} cpu_run_ns={cpu}"
    elif kind == "HostChange":
        h = HostChange.HostChange()
        h.Init(tab.Bytes, tab.Pos)
        line += f" host={h.Host().Host().decode()} up={h.Host().Up()} vms={h.Host().VmCount()}"
    elif kind == "ShiftEvent":
        s = ShiftEvent.ShiftEvent()
        s.Init(tab.Bytes, tab.Pos)
        line += f" host={(s.Host() or b'').decode()} command={s.CommandId()} phase={(s.Phase() or b'').decode()}"
    return line


def snapshot(ctx, args):
    import flatbuffers
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    apply_curve(sock, args)
    sock.connect(args.api)
    b = flatbuffers.Builder(64)
    SnapshotRequest.Start(b)
    body = SnapshotRequest.End(b)
    ApiRequest.Start(b)
    ApiRequest.AddRequestId(b, 1)
    ApiRequest.AddBodyType(b, ApiRequestBody.ApiRequestBody.SnapshotRequest)
    ApiRequest.AddBody(b, body)
    b.Finish(ApiRequest.End(b), file_identifier=b"MAPQ")
    sock.send_multipart([b"", b"api.req", bytes(b.Output())])
    if not sock.poll(3000):
        print("snapshot: no reply", flush=True)
        return None
    frames = sock.recv_multipart()
    sock.close()
    buf = frames[-1]
    if not ApiReply.ApiReply.ApiReplyBufferHasIdentifier(buf, 0):
        print("snapshot: reply has the wrong file_identifier", flush=True)
        return None
    rep = ApiReply.ApiReply.GetRootAs(buf, 0)
    if rep.Error() is not None and rep.Error().Code() != 0:
        print(f"snapshot: error {rep.Error().Code()}: {rep.Error().Message().decode()}", flush=True)
        return None
    tab = rep.Body()
    s = SnapshotReply.SnapshotReply()
    s.Init(tab.Bytes, tab.Pos)
    hosts = [f"{s.Hosts(i).Host().decode()}({'up' if s.Hosts(i).Up() else 'down'})" for i in range(s.HostsLength())]
    print(f"snapshot: events_seq={s.EventsSeq()} hosts={','.join(hosts)} vms={s.VmsLength()} kpi_reports={s.KpisLength()}",
          flush=True)
    return s.EventsSeq()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", default="tcp://127.0.0.1:7713", help="controller events endpoint (XPUB)")
    p.add_argument("--api", help="controller api endpoint, for snapshots on gaps (Clone pattern)")
    p.add_argument("--server-key", help="controller public key file (NAME.pub); enables CURVE")
    p.add_argument("--key", help="this client's key file (NAME.key, mode 0600)")
    p.add_argument("--topic", action="append", help="topic prefix to subscribe to (repeatable; default all)")
    p.add_argument("--count", type=int, default=0, help="exit after this many events (0: run until killed)")
    p.add_argument("--timeout", type=float, default=0, help="exit with status 1 if no event for this many seconds")
    p.add_argument("--python-dir", default=os.path.join(here, "..", "build", "python"),
                   help="directory of the flatc --python output")
    args = p.parse_args()
    load_generated(args.python_dir)
    global zmq
    import zmq

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 10000)
    sub.setsockopt(zmq.RECONNECT_IVL, 100)
    sub.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
    apply_curve(sub, args)
    for t in args.topic or [""]:
        sub.setsockopt(zmq.SUBSCRIBE, t.encode())
    sub.connect(args.endpoint)
    print(f"subscribed to {args.endpoint} topics={args.topic or ['(all)']}", flush=True)

    seen, last_seq, incarnation = 0, None, None
    whole_stream = not args.topic
    last_event = time.monotonic()
    while args.count == 0 or seen < args.count:
        if not sub.poll(200):
            if args.timeout and time.monotonic() - last_event > args.timeout:
                print("no event in time", file=sys.stderr)
                return 1
            continue
        frames = sub.recv_multipart()
        last_event = time.monotonic()
        if len(frames) != 2 or not MarketEvent.MarketEvent.MarketEventBufferHasIdentifier(frames[1], 0):
            print("dropped a malformed event", file=sys.stderr)
            continue
        topic = frames[0].decode(errors="replace")
        ev = MarketEvent.MarketEvent.GetRootAs(frames[1], 0)
        resync = incarnation is not None and ev.Incarnation() != incarnation
        if whole_stream and last_seq is not None and ev.Seq() != last_seq + 1 and not resync:
            print(f"gap: expected seq {last_seq + 1}, got {ev.Seq()}", flush=True)
            resync = True
        if resync and args.api:
            snapshot(ctx, args)
        incarnation, last_seq = ev.Incarnation(), ev.Seq()
        print(describe(topic, ev), flush=True)
        seen += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

# Writes the seed corpora of the h2 fuzz targets (corpus/h2_server_session/, corpus/h2_client_session/):
# small valid exchanges, each a few frames. Run once: python3 tests/fuzz/h2_seeds.py
import os, struct
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')

def frame(ftype, flags, stream, payload=b''):
    return struct.pack('>I', len(payload))[1:] + bytes([ftype, flags]) + struct.pack('>I', stream) + payload

DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1

def lit(name, value):  # literal header field without indexing, new name, no Huffman
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b'\x00' + bytes([len(name)]) + name + bytes([len(value)]) + value

def hpack(headers):
    return b''.join(lit(n, v) for n, v in headers)

def msg(body, flag=0, length=None):
    return bytes([flag]) + struct.pack('>I', len(body) if length is None else length) + body

def request(path='/a/b', ctype='application/grpc', extra=()):
    return hpack([(':method', 'POST'), (':scheme', 'http'), (':path', path), (':authority', 'x'),
                  ('content-type', ctype), ('te', 'trailers')] + list(extra))

settings = frame(SETTINGS, 0, 0)
settings_ack = frame(SETTINGS, ACK, 0)
ping = frame(PING, 0, 0, b'12345678')
window = frame(WINDOW_UPDATE, 0, 0, struct.pack('>I', 1000))
def goaway(last, code=0): return frame(GOAWAY, 0, 0, struct.pack('>II', last, code))
def rst(stream, code=8): return frame(RST, 0, stream, struct.pack('>I', code))
def call(stream, body=msg(b'hello'), **kw):
    return frame(HEADERS, END_HEADERS, stream, request(**kw)) + frame(DATA, END_STREAM, stream, body)

server = {
    'settings': settings,
    'unary': settings + call(1),
    'two-calls': settings + call(1) + call(3, msg(b'') + msg(b'second')),
    'reset-path': settings + call(1, path='/reset'),
    'peer-rst': settings + frame(HEADERS, END_HEADERS, 1, request()) + rst(1),
    'control': settings + settings_ack + ping + window + call(1) + goaway(1),
    'bad-flag': settings + call(1, msg(b'hello', flag=2)),
    'too-large': settings + call(1, msg(b'x', length=0x7fffffff)),
    'split-partial': settings + frame(HEADERS, END_HEADERS, 1, request())
        + frame(DATA, 0, 1, msg(b'hello')[:3]) + frame(DATA, END_STREAM, 1, msg(b'hello')[3:-1]),
    'request-trailers': settings + frame(HEADERS, END_HEADERS, 1, request(extra=[('grpc-timeout', '100m')]))
        + frame(DATA, 0, 1, msg(b'hello')) + frame(HEADERS, END_STREAM | END_HEADERS, 1, hpack([('x-trailer', 'v')])),
    'continuation': settings + frame(HEADERS, 0, 1, request()[:20])
        + frame(CONTINUATION, END_HEADERS, 1, request()[20:]) + frame(DATA, END_STREAM, 1, msg(b'hi')),
    'not-grpc': settings + call(1, ctype='text/plain'),
}

def response(stream):
    return frame(HEADERS, END_HEADERS, stream, hpack([(':status', '200'), ('content-type', 'application/grpc')]))
def trailers(stream, status='0'):
    return frame(HEADERS, END_STREAM | END_HEADERS, stream, hpack([('grpc-status', status)]))
def answer(stream, body=msg(b'world')):
    return response(stream) + frame(DATA, 0, stream, body) + trailers(stream)

client = {
    'settings-ack': settings_ack,
    'two-answers': settings_ack + answer(1) + answer(3),
    'trailers-only': settings_ack + frame(HEADERS, END_STREAM | END_HEADERS, 1,
        hpack([(':status', '200'), ('content-type', 'application/grpc'), ('grpc-status', '14')])) + answer(3),
    'rst-goaway': settings_ack + answer(1) + rst(3) + goaway(1),
    'control': settings_ack + ping + window + answer(1) + answer(3, msg(b'') + msg(b'x')),
    'bad-framing': settings_ack + answer(1, msg(b'world', flag=7)) + answer(3, msg(b'w', length=9)),
    'http-error': settings_ack + frame(HEADERS, END_STREAM | END_HEADERS, 1, hpack([(':status', '503')]))
        + response(3) + trailers(3, 'bogus'),
}

for target, inputs in (('h2_server_session', server), ('h2_client_session', client)):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    for name, data in inputs.items():
        assert len(data) < 1024, (name, len(data))
        with open(os.path.join(d, name + '.bin'), 'wb') as f:
            f.write(data)

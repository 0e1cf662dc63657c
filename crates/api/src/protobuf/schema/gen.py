#!/usr/bin/env python3
"""Generates the per-package schema files next to this script, and prints the kinds table for mod.rs.

Usage: python3 gen.py [KUBECTL_BINARY]   (default: the `kubectl` on PATH)

Field numbers come from the gzipped `FileDescriptorProto`s that gogoproto embeds in every Kubernetes Go
binary, so they are exactly what that kubectl marshals. Presence comes from the gogoproto `nullable` field
option (65001): a value field (nullable=false) is always on the wire and its JSON drops the zero value unless
the field is required; a pointer field is on the wire exactly when set. Required fields (no `omitempty` in
Go) and the JSON keys are cross-checked against k8s-openapi's Serialize impls (feature v1_33, read from the
cargo registry); mismatches are printed as warnings. The output is formatted with rustfmt.
"""
import glob, os, re, shutil, subprocess, sys, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
KUBECTL = sys.argv[1] if len(sys.argv) > 1 else shutil.which('kubectl')
K8S = glob.glob(os.path.expanduser('~/.cargo/registry/src/*/k8s-openapi-0.29.*/src/v1_33'))[0]

def varint(b, i):
    r = 0; s = 0
    while True:
        c = b[i]; i += 1
        r |= (c & 0x7f) << s; s += 7
        if c < 0x80: return r, i
def fields(b):
    i = 0; out = []
    while i < len(b):
        k, i = varint(b, i); f, w = k >> 3, k & 7
        if w == 0: v, i = varint(b, i)
        elif w == 2:
            l, i = varint(b, i); v = b[i:i+l]; i += l
        elif w == 1: v = b[i:i+8]; i += 8
        elif w == 5: v = b[i:i+4]; i += 4
        else: raise Exception("wt %d" % w)
        out.append((f, w, v))
    return out
def parse_field(b):
    d = {'options': {}}
    for f, w, v in fields(b):
        if f == 1: d['name'] = v.decode()
        elif f == 3: d['number'] = v
        elif f == 4: d['label'] = v
        elif f == 5: d['type'] = v
        elif f == 6: d['type_name'] = v.decode()
        elif f == 10: d['json_name'] = v.decode()
        elif f == 8:
            for of, ow, ov in fields(v): d['options'][of] = ov
    return d
def parse_msg(b, prefix, out):
    d = {'fields': [], 'options': {}}
    nested = []
    for f, w, v in fields(b):
        if f == 1: d['name'] = v.decode()
        elif f == 2: d['fields'].append(parse_field(v))
        elif f == 3: nested.append(v)
        elif f == 7:
            for of, ow, ov in fields(v): d['options'][of] = ov
    full = prefix + '.' + d['name']
    d['full'] = full
    out[full] = d
    for n in nested: parse_msg(n, full, out)

def load_all(binary):
    """Every message of every k8s.io generated.proto descriptor embedded in a Go binary."""
    data = open(os.path.realpath(binary), 'rb').read()
    msgs, i = {}, 0
    while True:
        i = data.find(b'\x1f\x8b\x08\x00\x00\x00\x00\x00', i)
        if i < 0:
            return msgs
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[i:i + 2_000_000])
            top = fields(raw)
        except Exception:
            top = []
        i += 1
        if not top or top[0][0] != 1 or not top[0][2].startswith(b'k8s.io/') or not top[0][2].endswith(b'.proto'):
            continue
        pkg = [v for f, w, v in top if f == 2][0].decode()
        for f, w, v in top:
            if f == 4:
                parse_msg(v, '.' + pkg, msgs)


M = load_all(KUBECTL)

META = '.k8s.io.apimachinery.pkg.apis.meta.v1.'
SPECIAL = {
    META + 'Time': 'Time', META + 'MicroTime': 'MicroTime', META + 'Duration': 'Duration',
    META + 'FieldsV1': 'RawJson', '.k8s.io.apimachinery.pkg.runtime.RawExtension': 'RawJson',
    '.k8s.io.apimachinery.pkg.util.intstr.IntOrString': 'IntOrString',
    '.k8s.io.apimachinery.pkg.api.resource.Quantity': 'Quantity',
}
# Go embedded structs serialised with `json:",inline"`: their fields join the parent object.
INLINE = {
    ('.k8s.io.api.core.v1.Volume', 'volumeSource'), ('.k8s.io.api.core.v1.Probe', 'handler'),
    ('.k8s.io.api.core.v1.EphemeralContainer', 'ephemeralContainerCommon'),
    ('.k8s.io.api.core.v1.PersistentVolumeSpec', 'persistentVolumeSource'),
    ('.k8s.io.api.networking.v1.IngressRule', 'ingressRuleValue'),
}
for n in ['ConfigMapEnvSource', 'ConfigMapKeySelector', 'ConfigMapProjection', 'ConfigMapVolumeSource',
          'SecretEnvSource', 'SecretKeySelector', 'SecretProjection']:
    INLINE.add(('.k8s.io.api.core.v1.' + n, 'localObjectReference'))

# (apiVersion, kind, proto message)
ROOTS = [
    ('v1', 'Namespace', '.k8s.io.api.core.v1.Namespace'),
    ('v1', 'Service', '.k8s.io.api.core.v1.Service'),
    ('v1', 'Endpoints', '.k8s.io.api.core.v1.Endpoints'),
    ('v1', 'Pod', '.k8s.io.api.core.v1.Pod'),
    ('v1', 'Node', '.k8s.io.api.core.v1.Node'),
    ('v1', 'Secret', '.k8s.io.api.core.v1.Secret'),
    ('v1', 'ConfigMap', '.k8s.io.api.core.v1.ConfigMap'),
    ('v1', 'Event', '.k8s.io.api.core.v1.Event'),
    ('v1', 'ServiceAccount', '.k8s.io.api.core.v1.ServiceAccount'),
    ('v1', 'Binding', '.k8s.io.api.core.v1.Binding'),
    ('v1', 'ReplicationController', '.k8s.io.api.core.v1.ReplicationController'),
    ('apps/v1', 'Deployment', '.k8s.io.api.apps.v1.Deployment'),
    ('apps/v1', 'ReplicaSet', '.k8s.io.api.apps.v1.ReplicaSet'),
    ('apps/v1', 'StatefulSet', '.k8s.io.api.apps.v1.StatefulSet'),
    ('apps/v1', 'DaemonSet', '.k8s.io.api.apps.v1.DaemonSet'),
    ('batch/v1', 'Job', '.k8s.io.api.batch.v1.Job'),
    ('autoscaling/v1', 'Scale', '.k8s.io.api.autoscaling.v1.Scale'),
    ('coordination.k8s.io/v1', 'Lease', '.k8s.io.api.coordination.v1.Lease'),
    ('discovery.k8s.io/v1', 'EndpointSlice', '.k8s.io.api.discovery.v1.EndpointSlice'),
    ('networking.k8s.io/v1', 'Ingress', '.k8s.io.api.networking.v1.Ingress'),
    ('networking.k8s.io/v1', 'IngressClass', '.k8s.io.api.networking.v1.IngressClass'),
    ('policy/v1', 'Eviction', '.k8s.io.api.policy.v1.Eviction'),
    ('meta.k8s.io/v1', 'DeleteOptions', META + 'DeleteOptions'),
]

# k8s-openapi: json keys of each type's Serialize impl, and which are required (non-Option).
def k8s_dir(full):
    pkg = full.rsplit('.', 1)[0]
    if pkg.startswith('.k8s.io.api.'):
        return os.path.join(K8S, 'api', *pkg[len('.k8s.io.api.'):].split('.'))
    if pkg.startswith('.k8s.io.apimachinery.pkg.'):
        return os.path.join(K8S, 'apimachinery', 'pkg', *pkg[len('.k8s.io.apimachinery.pkg.'):].split('.'))
    raise Exception(full)
OPENAPI = {}
def openapi(full):
    name = full.rsplit('.', 1)[1]
    d = k8s_dir(full)
    if d not in OPENAPI:
        OPENAPI[d] = {}
        for fn in glob.glob(d + '/*.rs'):
            src = open(fn).read()
            for mm in re.finditer(r'impl crate::serde::Serialize for (\w+) \{(.*?)\n\}\n', src, re.S):
                keys = {}
                lines = mm.group(2).split('\n')
                for i, l in enumerate(lines):
                    k = re.search(r'serialize_field\(&mut state, "(\w+)", (.*)\)\?;', l)
                    if k and not k.group(2).startswith('<Self as crate::Resource>'):
                        keys[k.group(1)] = 'if let Some' not in lines[i - 1]
                OPENAPI[d][mm.group(1)] = keys
    return OPENAPI[d].get(name)

def is_map(f):
    return f.get('type') == 11 and f.get('label') == 3 and M[f['type_name']]['options'].get(7) == 1

def string_list(full):
    d = M[full]
    fs = d['fields']
    return len(fs) == 1 and fs[0]['name'] == 'items' and fs[0]['label'] == 3 and fs[0]['type'] == 9 and 64003 in d['options']

SCALAR = {9: 'String', 12: 'Bytes', 8: 'Bool', 5: 'Int32', 3: 'Int64', 13: 'UInt32', 4: 'UInt64', 1: 'Double', 2: 'Float'}

# closure
seen = {}
order = []
def visit(full):
    if full in SPECIAL or full in seen:
        return
    if string_list(full):
        return
    seen[full] = True
    for f in M[full]['fields']:
        if f.get('type') == 11:
            t = f['type_name']
            if is_map(f):
                v = M[t]['fields'][1]
                if v.get('type') == 11:
                    visit(v['type_name'])
            else:
                visit(t)
    order.append(full)
for _, _, r in ROOTS:
    visit(r)

def snake(name):
    s = re.sub(r'([a-z0-9])([A-Z])', r'\1_\2', name)
    s = re.sub(r'([A-Z]+)([A-Z][a-z])', r'\1_\2', s)
    return s.upper()

def module(full):
    pkg = full.rsplit('.', 1)[0]
    parts = pkg.split('.')
    return parts[-2] + '_' + parts[-1]   # core_v1, meta_v1, apps_v1 ...

def type_expr(f, cur_mod):
    t = f.get('type')
    if t in SCALAR:
        return 'T::' + SCALAR[t]
    if t == 11:
        tn = f['type_name']
        if tn in SPECIAL:
            return 'T::' + SPECIAL[tn]
        if string_list(tn):
            return 'T::StringList'
        mod = module(tn)
        ref = snake(tn.rsplit('.', 1)[1])
        if mod != cur_mod:
            ref = 'super::%s::%s' % (mod, ref)
        return 'T::Message(&%s)' % ref
    raise Exception('unsupported type %s' % f)

# JSON names that differ from the proto field name (a missing `name=` in the Go protobuf tag).
RENAME = {('.k8s.io.api.networking.v1.IngressClassParametersReference', 'aPIGroup'): 'apiGroup'}
INLINE_OA = {}
for parent, fname in INLINE:
    if parent in seen:
        f = [f for f in M[parent]['fields'] if f['name'] == fname][0]
        INLINE_OA.setdefault(f['type_name'], {}).update(openapi(parent) or {})
ROOT_TYPES = {r for _, _, r in ROOTS}
warnings = []
out = {}
required_special = []
for full in order:
    d = M[full]
    mod = module(full)
    short = full.rsplit('.', 1)[1]
    oa = openapi(full) or INLINE_OA.get(full)
    if oa is None:
        warnings.append('no k8s-openapi type for %s' % full)
        oa = {}
    lines = []
    keys = set()
    for f in d['fields']:
        name, num = RENAME.get((full, f['name']), f['name']), f['number']
        nullable = f['options'].get(65001, 1) != 0
        if (full, name) in INLINE:
            assert f.get('type') == 11 and not nullable
            lines.append('inline(%d, &%s)' % (num, type_expr(f, mod)[len('T::Message(&'):-1]))
            sub = M[f['type_name']]
            for sf in sub['fields']:
                keys.add(RENAME.get((f['type_name'], sf['name']), sf['name']))
            continue
        keys.add(name)
        if name not in oa:
            warnings.append('%s.%s (%d) not in k8s-openapi' % (short, name, num))
        req = oa.get(name, False)
        if is_map(f):
            v = M[f['type_name']]['fields'][1]
            ty = 'T::Map(&%s)' % type_expr(v, mod)
            ctor = 'req' if req else 'omit'
        elif f['label'] == 3:
            ty = type_expr(f, mod)
            ctor = 'list_req' if req else 'list'
        else:
            ty = type_expr(f, mod)
            if nullable:
                ctor = 'opt'
            elif req:
                ctor = 'req'
                if f.get('type') == 11 and f['type_name'] in SPECIAL:
                    required_special.append((short, name))
            else:
                ctor = 'omit'
        lines.append('%s(%d, "%s", %s)' % (ctor, num, name, ty))
    for k in oa if openapi(full) is not None else ():  # an inline type's keys are checked in its parent
        if k not in keys and not (k in ('apiVersion', 'kind') and full in ROOT_TYPES):
            warnings.append('%s.%s in k8s-openapi but not in proto' % (short, k))
    out.setdefault(mod, []).append((short, full, lines))

HEADER = '''// Generated from the protobuf descriptors embedded in kubectl 1.33 (`k8s.io/%s/generated.proto`),
// with field presence from the gogoproto `nullable` options and required fields from k8s-openapi.
// Regenerate rather than hand-edit when adding types.

use super::{Message, T, inline, list, list_req, omit, opt, req};
'''
OUT = HERE
for mod, msgs in sorted(out.items()):
    src_path = {'meta_v1': 'apimachinery/pkg/apis/meta/v1'}.get(mod, 'api/' + mod.replace('_', '/'))
    used = set()
    body = []
    for short, full, lines in msgs:
        body.append('\npub(super) static %s: Message = Message {\n    name: "%s",\n    fields: &[\n%s    ],\n};\n' % (
            snake(short), full.lstrip('.').replace('k8s.io.apimachinery.pkg.apis.', '').replace('k8s.io.api.', ''),
            ''.join('        %s,\n' % l for l in lines)))
        for l in lines:
            used.add(l.split('(')[0])
    imports = ', '.join(sorted(u for u in used) + ['Message', 'T'] if 'T::' in ''.join(body) else sorted(used) + ['Message'])
    hdr = HEADER % src_path
    hdr = hdr.replace('use super::{Message, T, inline, list, list_req, omit, opt, req};',
                      'use super::{%s};' % ', '.join(sorted(['Message', 'T'] + sorted(used), key=lambda s: (s[0].islower(), s))))
    open(os.path.join(OUT, mod + '.rs'), 'w').write(hdr + ''.join(body))
# kinds table
kinds = []
for av, kind, full in ROOTS:
    kinds.append('    ("%s", "%s", &%s::%s),' % (av, kind, module(full), snake(full.rsplit('.', 1)[1])))
print('static KINDS:')
print('\n'.join(kinds))
print('modules:', ' '.join(sorted(out)))
for w in warnings: print('WARN', w)
print('required special:', required_special)
print(len(order), 'messages', {k: len(v) for k, v in out.items()})

for f in glob.glob(os.path.join(OUT, '*.rs')):
    if os.path.basename(f) != 'mod.rs':
        subprocess.run(['rustfmt', '--edition', '2024', f], check=True)

// The certificate parser reads every fixed structure to its end: an element added anywhere a
// certificate's grammar has no room for one is refused, whatever the level (Certificate,
// tbsCertificate, version, validity, Name, SubjectPublicKeyInfo, AlgorithmIdentifier, Extension,
// and the DER inside each extension). Each case re-encodes the certificate with one NULL added at
// the start or the end of one constructed value, lengths fixed all the way up.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { issue, issueHierarchy } from '../../gateway/pki/issue.js'
import { CertificateError, parseCertificate } from '../certificate.js'
import { DerError } from '../der.js'

interface Node { readonly tag: number, readonly value: Uint8Array, kids: Node[] | undefined }

/**
 * The TLV tree. An extension's value (an OCTET STRING in a SEQUENCE that starts with an OID) holding
 * one DER value is a node with that child; other OCTET STRINGs are opaque (a random key identifier
 * may happen to parse as DER).
 */
function tree (bytes: Uint8Array, start = 0, end = bytes.length): Node[] {
  const out: Node[] = []
  let at = start
  while (at < end) {
    const tag = bytes[at] as number
    let length = bytes[at + 1] as number
    let header = 2
    if (length & 0x80) {
      const n = length & 0x7f
      length = 0
      for (let i = 0; i < n; i++) length = length * 256 + (bytes[at + 2 + i] as number)
      header += n
    }
    const value = bytes.subarray(at + header, at + header + length)
    let kids: Node[] | undefined
    if ((tag & 0x20) !== 0) {
      kids = tree(bytes, at + header, at + header + length)
      if (kids[0]?.tag === 0x06) for (const kid of kids) if (kid.tag === 0x04) kid.kids = extensionValue(kid.value)
    }
    out.push({ tag, value, kids })
    at += header + length
  }
  if (at !== end) throw new Error('not DER')
  return out
}

function extensionValue (value: Uint8Array): Node[] | undefined {
  try {
    const inner = tree(value)
    return inner.length === 1 ? inner : undefined
  } catch {
    return undefined // not DER inside: left opaque
  }
}

function encode (node: Node): Buffer {
  const body = node.kids === undefined ? Buffer.from(node.value) : Buffer.concat(node.kids.map(encode))
  const n = body.length
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff]
  return Buffer.concat([Buffer.from([node.tag, ...length]), body])
}

function constructed (node: Node, into: Node[] = []): Node[] {
  if (node.kids !== undefined) {
    into.push(node)
    for (const kid of node.kids) constructed(kid, into)
  }
  return into
}

const NULL: Node = { tag: 0x05, value: new Uint8Array(0), kids: undefined }

test('an element added to any fixed structure of a certificate is refused', async () => {
  const certificates: Array<[string, Uint8Array]> = []
  for (const keyAlgorithm of ['P-256', 'RSA-2048'] as const) { // RSA: AlgorithmIdentifiers with NULL parameters
    const pki = await issueHierarchy({ keyAlgorithm })
    const leaf = await issue({ cn: 'device-1', issuer: pki.int2, keyAlgorithm, sanDns: ['device-1.example'] })
    certificates.push([`${keyAlgorithm} leaf`, leaf.der], [`${keyAlgorithm} intermediate`, pki.int2.der], [`${keyAlgorithm} root`, pki.root.der])
  }
  for (const [which, der] of certificates) {
    parseCertificate(der) // the unmutated certificate parses
    const root = tree(der)[0] as Node
    assert.deepEqual(encode(root), Buffer.from(der), 're-encoding is exact')
    const nodes = constructed(root)
    assert.ok(nodes.length >= 20, `${which}: ${nodes.length} constructed values`)
    for (const [i, node] of nodes.entries()) {
      for (const where of ['start', 'end'] as const) {
        const kids = node.kids as Node[]
        node.kids = where === 'start' ? [NULL, ...kids] : [...kids, NULL]
        const mutated = encode(root)
        node.kids = kids
        assert.throws(() => parseCertificate(mutated), (err) => err instanceof DerError || err instanceof CertificateError,
          `${which}: a NULL at the ${where} of constructed value ${i} (tag 0x${node.tag.toString(16)}) was accepted`)
      }
    }
  }
})

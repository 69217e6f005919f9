// The proof-of-possession certificate of the IoT Hub X.509 CA flow: CN = the verification code the
// admin API issued, signed with the CA's private key. Short-lived and without EKU: it proves
// possession of the key and is good for nothing else.
import { issue, type Issued } from './issue.js'

export async function verificationCertificate (code: string, ca: Issued): Promise<Issued> {
  return await issue({ cn: code, issuer: ca, eku: [], hash: ca.keyAlgorithm === 'P-384' ? 'SHA-384' : 'SHA-256', notAfter: new Date(Date.now() + 86_400_000) })
}

/** PostgreSQL keeps payloads as JSONB and returns them re-formatted: canonicalize to get the bytes to send. */
import { canonicalJson } from "../../signer.js";

export function canonicalBody(payloadText: string): string {
  return canonicalJson(JSON.parse(payloadText));
}

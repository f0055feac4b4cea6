// The settings every reliability run's cluster gets: short leases, presence TTL, dm ack timeout and
// backoff, so that faults and retries play out within seconds. Tests derive their bounds from these.

export const LEASE_MS = 1500;
export const PRESENCE_TTL_MS = 3000;
export const ACK_TIMEOUT_MS = 300;
export const MAX_BACKOFF_MS = 1000;
export const MAX_ATTEMPTS = 4;
export const REQUEST_TIMEOUT_MS = 3000;

export const ENV = {
  RTGW_LEASE_MS: String(LEASE_MS),
  RTGW_PRESENCE_TTL_MS: String(PRESENCE_TTL_MS),
  RTGW_DM_ACK_TIMEOUT_MS: String(ACK_TIMEOUT_MS),
  RTGW_DM_MAX_BACKOFF_MS: String(MAX_BACKOFF_MS),
  RTGW_DM_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
  RTGW_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
};

// The tests use the load tests' port helpers: load tests stay black boxes that import nothing
// from the gateway or its tests, so the shared helpers live on their side.
export { freePort, waitForPort } from '../../../load-tests/support/ports.js'

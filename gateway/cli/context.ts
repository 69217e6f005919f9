// What a command gets from the CLI entry: its output streams and the environment values it may
// use. Only gateway/cli.ts reads process.env; commands see these values and nothing else.
export interface CliEnv {
  /** CERTGATE_ADMIN_URL */
  readonly adminUrl: string | undefined
  /** CERTGATE_ADMIN_TOKEN */
  readonly adminToken: string | undefined
  /** CERTGATE_DATA_DIR, where the gateway saved `admin-token` */
  readonly dataDir: string | undefined
}

export interface CliContext {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
  readonly env: CliEnv
  /** Relative paths on the command line are resolved against this directory. */
  readonly cwd: string
}

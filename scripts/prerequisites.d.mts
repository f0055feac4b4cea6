// Types of prerequisites.mjs for the TypeScript tests that import it (the script itself runs before any
// build, so it is plain JavaScript).
export interface Prerequisite {
  /** The program's file name. */
  bin: string;
  /** The Debian package that ships it. */
  pkg: string;
  /** Which tests run it. */
  usedBy: string;
}
export const PREREQUISITES: readonly Prerequisite[];
export const EXIT_MISSING: number;
export function defaultSearch(env?: NodeJS.ProcessEnv): string[];
export function findBinary(name: string, dirs?: readonly string[]): string | undefined;
export function missingPackages(dirs?: readonly string[]): string[];
export function installCommand(pkgs: readonly string[], isRoot?: boolean): string;
export function missingMessage(pkgs: readonly string[], dirs?: readonly string[]): string;
export function requireBinary(name: string): string;

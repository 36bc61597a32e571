/**
 * What the host must offer, in one place: `hutch doctor` checks it and `hutch doctor --install`
 * installs the Debian packages behind whatever is missing.
 */

/** A program that must be on the host. */
export interface CommandRequirement {
  readonly command: string
  /** Absolute paths tried in order. */
  readonly paths: readonly string[]
  readonly debianPackage: string
  readonly purpose: string
}

/** A module the default Python environment must import. */
export interface PythonModuleRequirement {
  /** The import name. */
  readonly module: string
  readonly debianPackage: string
}

/** Programs the sandbox and its runtimes need. */
export const commandRequirements: readonly CommandRequirement[] = [
  {
    command: 'bwrap',
    paths: ['/usr/bin/bwrap'],
    debianPackage: 'bubblewrap',
    purpose: 'the default sandbox backend',
  },
  {
    command: 'python3',
    paths: ['/usr/bin/python3'],
    debianPackage: 'python3',
    purpose: 'the python runtime and the seccomp filter generator',
  },
  {
    command: 'cc',
    paths: ['/usr/bin/cc'],
    debianPackage: 'gcc',
    purpose: "builds the fast path's sandbox init (assets/hutch-init.c) once",
  },
  { command: 'go', paths: ['/usr/bin/go'], debianPackage: 'golang-go', purpose: 'the go runtime' },
  {
    command: 'ffmpeg',
    paths: ['/usr/bin/ffmpeg'],
    debianPackage: 'ffmpeg',
    purpose: 'audio and video work in programs',
  },
]

/**
 * The default Python environment: what boxbox's image offers, wherever Debian packages it, plus
 * what hutch itself runs in Python (libseccomp's binding, IPython, nbclient and ipykernel, dill).
 */
export const pythonModuleRequirements: readonly PythonModuleRequirement[] = [
  { module: 'seccomp', debianPackage: 'python3-seccomp' },
  { module: 'numpy', debianPackage: 'python3-numpy' },
  { module: 'pandas', debianPackage: 'python3-pandas' },
  { module: 'scipy', debianPackage: 'python3-scipy' },
  { module: 'sklearn', debianPackage: 'python3-sklearn' },
  { module: 'statsmodels', debianPackage: 'python3-statsmodels' },
  { module: 'sympy', debianPackage: 'python3-sympy' },
  { module: 'matplotlib', debianPackage: 'python3-matplotlib' },
  { module: 'seaborn', debianPackage: 'python3-seaborn' },
  { module: 'plotly', debianPackage: 'python3-plotly' },
  { module: 'PIL', debianPackage: 'python3-pil' },
  { module: 'cv2', debianPackage: 'python3-opencv' },
  { module: 'openpyxl', debianPackage: 'python3-openpyxl' },
  { module: 'docx', debianPackage: 'python3-docx' },
  { module: 'pypdf', debianPackage: 'python3-pypdf' },
  { module: 'reportlab', debianPackage: 'python3-reportlab' },
  { module: 'bs4', debianPackage: 'python3-bs4' },
  { module: 'lxml', debianPackage: 'python3-lxml' },
  { module: 'requests', debianPackage: 'python3-requests' },
  { module: 'pydub', debianPackage: 'python3-pydub' },
  { module: 'IPython', debianPackage: 'python3-ipython' },
  { module: 'nbclient', debianPackage: 'python3-nbclient' },
  // nbclient runs notebooks on a Jupyter kernel: ipykernel's.
  { module: 'ipykernel', debianPackage: 'python3-ipykernel' },
  { module: 'dill', debianPackage: 'python3-dill' },
]

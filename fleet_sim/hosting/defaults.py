"""Published defaults for the hosting modes and provisioning, each with its source.

Every default number of the simulator lives here, so a user can see at
once what was assumed and where it came from. Units are in the names (docs/model.md §1).
"""

from __future__ import annotations

# --- CPU overheads --------------------------------------------------------------
#: Extra host core-s per guest core-s under KVM for CPU-bound work. Felter et al.,
#: "An updated performance comparison of virtual machines and Linux containers",
#: ISPASS 2015: KVM within a few percent of native on CPU-bound benchmarks (LINPACK,
#: PXZ ~ 2-22% with the larger figures from I/O paths); 5% is a middle value.
VIRT_OVERHEAD_TYPE1 = 0.05
#: Type-2 (hosted) hypervisors add a host OS in the path; VirtualBox/VMware Workstation
#: style CPU overheads of 10-20% are reported (Li et al., "A comparative study of
#: hypervisors", 2013); we take 15%.
VIRT_OVERHEAD_TYPE2 = 0.15
#: Containers run as native processes: Felter et al. 2015 measure no CPU overhead
#: for Docker beyond noise.
CONTAINER_CPU_OVERHEAD = 0.0
#: Idle guest OS background CPU (timers, daemons), cores per VM. Measured idle
#: Linux guests draw ~1-2% of one core (Felter et al. 2015 idle baselines).
GUEST_OS_BACKGROUND_CORES = 0.02
#: Host OS footprint of a type-2 hypervisor (desktop/host OS services), cores.
TYPE2_HOST_OS_CORES = 0.25

# --- memory ---------------------------------------------------------------------
#: RAM a minimal Linux guest OS uses inside its VM (systemd, sshd, page cache floor).
#: Ubuntu Server minimum installs run in ~256-512 MiB; we take 384 MiB.
GUEST_OS_RAM_MIB = 384.0
#: Per-VM hypervisor RAM overhead (QEMU/KVM process, page tables, device models).
#: Agache et al., "Firecracker", NSDI 2020: < 5 MiB per microVM for Firecracker,
#: ~ 131 MiB per QEMU VM; we default to a full QEMU/KVM VM.
VM_HYPERVISOR_RAM_MIB = 131.0
FIRECRACKER_VM_RAM_MIB = 5.0
#: Type-2 hypervisor host OS RAM footprint (a desktop/host OS), MiB.
TYPE2_HOST_OS_RAM_MIB = 2048.0
#: Bare-metal / host OS base RAM (kernel + daemons), MiB.
HOST_OS_RAM_MIB = 1024.0
#: Per-container runtime RAM overhead (containerd-shim, cgroup bookkeeping), MiB.
#: containerd-shim-runc-v2 RSS is ~ 3-10 MiB per container; we take 8 MiB.
CONTAINER_RAM_OVERHEAD_MIB = 8.0

# --- cgroups --------------------------------------------------------------------
#: CFS bandwidth period (Linux kernel default cfs_period_us = 100000).
CFS_PERIOD_S = 0.1
#: cgroup v2 default cpu.weight.
CPU_WEIGHT_DEFAULT = 100.0
#: OOM-kill restart back-off: Kubernetes CrashLoopBackOff starts at 10 s, doubles,
#: caps at 300 s.
RESTART_BACKOFF_BASE_S = 10.0
RESTART_BACKOFF_MAX_S = 300.0

# --- start-up times (docs/model.md §5) -------------------------------------------------
#: VM boot of a full Linux guest under QEMU/KVM: tens of seconds (Mao & Humphrey,
#: "A performance study on the VM startup time in the cloud", CLOUD 2012: 44-97 s
#: on EC2/Azure/Rackspace including provisioning; a local KVM boot ~ 20-40 s).
VM_BOOT_MEAN_S = 30.0
VM_BOOT_SD_S = 8.0
#: Firecracker microVM boot to user space: ~125 ms (Agache et al., NSDI 2020).
FIRECRACKER_BOOT_S = 0.125
#: Container start once the image is local: runc create+start ~ 0.3-1 s
#: (Felter et al. 2015 report sub-second Docker start).
CONTAINER_START_MEAN_S = 0.5
CONTAINER_START_SD_S = 0.15
#: Procuring a physical server: days (racking, cabling, burn-in).
SERVER_PROCURE_S = 5 * 86_400.0
#: Installing an OS on bare metal by PXE/kickstart: ~ 20-40 min.
OS_INSTALL_S = 1800.0
#: Installing an application and its dependencies by hand: hours; by a
#: configuration-management script (Ansible/Puppet run): ~ 5-15 minutes.
MANUAL_INSTALL_S = 2 * 3600.0
SCRIPTED_INSTALL_S = 600.0
#: Per-step failure probability of an install step (package mirror hiccups,
#: config drift); ~ 1% per step is a common planning figure.
INSTALL_STEP_FAILURE_P = 0.01

# --- images and network -----------------------------------------------------------
#: Typical VM image (qcow2 of a server distribution plus app), MB.
VM_IMAGE_MB = 2_000.0
#: Typical container image: base layers ~ 100-300 MB, app layer ~ 10-50 MB.
CONTAINER_BASE_LAYER_MB = 200.0
CONTAINER_APP_LAYER_MB = 30.0
#: Host NIC 10 GbE ≈ 1250 MB/s; registry uplink 10 GbE by default.
HOST_NIC_MB_S = 1_250.0
REGISTRY_UPLINK_MB_S = 1_250.0
#: Health check duration and failure probability of a new instance.
HEALTH_CHECK_S = 10.0
HEALTH_CHECK_FAILURE_P = 0.01

# --- isolation (docs/model.md §6) -----------------------------------------------------
#: Probability that a compromise escapes a container to its kernel (planning
#: figure; container escapes via kernel CVEs are far more common than VM escapes).
KERNEL_ESCAPE_P = 0.1
#: Probability that a compromise escapes a VM through the hypervisor.
HYPERVISOR_ESCAPE_P = 0.01

# --- cost and power -----------------------------------------------------------------
#: Monthly cost of a 2-socket server (amortised capex over 36 months + power + space).
HOST_MONTHLY_COST_USD = 450.0
#: Idle and peak power of a 2-socket server (SPECpower_ssj2008 results for recent
#: 2-socket Xeon servers: ~ 50-120 W idle, 300-500 W at 100%).
HOST_IDLE_W = 100.0
HOST_PEAK_W = 400.0

# --- hosting modes (lifecycle) ------------------------------------------------------
#: Kubernetes resets the CrashLoopBackOff delay once a container has run for 10
#: minutes without a problem (kubernetes.io, "Pod Lifecycle", container restarts).
RESTART_BACKOFF_RESET_S = 600.0
#: A bare-metal app runs as a systemd service with Restart=on-failure; systemd waits
#: RestartSec before restarting it, 100 ms by default (systemd.service(5)).
SERVICE_RESTART_BACKOFF_S = 0.1
#: systemd gives up on a unit that starts more than DefaultStartLimitBurst=5 times
#: within DefaultStartLimitIntervalSec=10s (systemd-system.conf(5)): it stays failed.
SERVICE_START_LIMIT_BURST = 5
SERVICE_START_LIMIT_INTERVAL_S = 10.0
#: Coefficient of variation of a VM boot time: VM_BOOT_SD_S / VM_BOOT_MEAN_S.
VM_BOOT_CV = VM_BOOT_SD_S / VM_BOOT_MEAN_S
#: Coefficient of variation of a container start: CONTAINER_START_SD_S / MEAN.
CONTAINER_START_CV = CONTAINER_START_SD_S / CONTAINER_START_MEAN_S
#: A vCPU:pCPU overcommit ratio operators use for general-purpose VMs: VMware's
#: vSphere guidance reports 1:1 to 3:1 as "no problem", 3:1 to 5:1 as degrading
#: (VMware, "Performance Best Practices for vSphere"; vCPU sizing white papers).
VCPU_OVERCOMMIT_RATIO = 3.0

# --- rollout ---------------------------------------------------------------------
#: Layers one image pull downloads at once: containerd's CRI max_concurrent_downloads
#: and dockerd's --max-concurrent-downloads both default to 3 (containerd CRI config
#: reference; Docker Engine dockerd reference).
MAX_CONCURRENT_DOWNLOADS = 3
#: Space a host keeps for cached image layers, MB. kubelet's image garbage
#: collection frees the least recently used images above 85% disk use
#: (--image-gc-high-threshold); we assume 50 GB of a server's disk for images.
LAYER_CACHE_MB = 50_000.0
#: Uploads a peer serves at once in P2P distribution: BitTorrent clients unchoke
#: 4 peers (Cohen, "Incentives build robustness in BitTorrent", 2003).
P2P_UPLOAD_SLOTS = 4
#: Piece size of P2P image distribution, MB: Dragonfly's DefaultPieceSize is 4 MiB
#: (dragonflyoss/Dragonfly2, pkg/util/pieceutil; it grows pieces to at most 15 MiB
#: for very large files); BitTorrent uses 256 KiB-4 MiB.
P2P_PIECE_MB = 4.0
#: Decompressing and unpacking a gzip layer, MB of (compressed) layer per core-s:
#: containerd issue #13559 (2026) measures ~30 s of single-core gzip inflation for a
#: 2.7 GiB layer (≈ 97 MB/s; untar and writes are faster) and finds that it often
#: dominates pulls in datacenters; moby #21814 reports ~8 s to download and 35-40 s to
#: extract a 1.5 GB image.
LAYER_UNPACK_MB_S_PER_CORE = 100.0
#: Share of an image a container needs before it can start when pulled lazily:
#: Harter et al., "Slacker: fast distribution with lazy Docker containers", FAST 2016:
#: only 6.4 % of the data pulled is read at start-up (57 HelloBench images).
LAZY_START_FRACTION = 0.064
#: Attempts after the first when an instance fails to come up. Deploy tools
#: retry a failed host once before marking it failed (planning figure; AWS
#: CodeDeploy itself does not retry, Kubernetes retries with back-off).
PROVISION_MAX_RETRIES = 1
#: Hosts per rack (a 42U rack of 1U servers with top-of-rack switches).
RACK_HOSTS = 40
#: Rack uplink to the core: 4 x 40 GbE ≈ 20 000 MB/s, i.e. 2.5:1 oversubscription
#: for 40 hosts at 10 GbE (a common leaf-spine design ratio, 2:1-3:1).
RACK_UPLINK_MB_S = 20_000.0

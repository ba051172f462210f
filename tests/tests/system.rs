//! Issue 5: init for real systems. Each test boots Debian's cloud kernel
//! under TCG over a busybox root made here and checks what only the
//! feature under test produces.

use tests::{Scratch, busybox_root, chrootvm_command, run, script};

/// rapido's parameters reach the booted system: hostname and NIS domain,
/// the console size (no stty program ran before), the MAC as a file and in
/// the real init's environment, and lo is up. Malformed values are
/// reported and ignored.
#[test]
fn rapido_parameters_name_the_vm_and_size_its_console() {
    let scratch = Scratch::new("rapido");
    let root = scratch.dir("root");
    busybox_root(&root);
    script(
        &root.join("probe.sh"),
        "echo \"host=$(hostname) domain=$(cat /proc/sys/kernel/domainname) size=$(stty size) \
         lo=$(cat /sys/class/net/lo/flags) mac=$(cat /run/rapido/mac.eth0) env=$RAPIDO_MAC_ETH0 \
         bad=$(ls /run/rapido)\"\npoweroff -f\n",
    );
    let mut command = chrootvm_command();
    command
        .arg("--append")
        .arg(
            "rapido.hostname=box.example rapido.vm_num=7 rapido.stty=40,120 \
             rapido.mac.eth0=52:54:00:12:34:56 rapido.mac.bad=zz",
        )
        .arg("--init")
        .arg("/probe.sh")
        .arg(&root);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "the VM should boot and power off");
    // lo's flags: IFF_UP (0x1) | IFF_LOOPBACK (0x8).
    vm.check(
        vm.output().contains(
            "host=box domain=example size=40 120 lo=0x9 mac=52:54:00:12:34:56 \
             env=52:54:00:12:34:56 bad=mac.eth0",
        ),
        "hostname, domain, console size, lo, and the MAC file and variable should be set",
    );
    vm.check(
        vm.output().contains("init: cannot use rapido.mac.bad=zz: "),
        "a malformed MAC should be reported",
    );

    // rapido.vm_num alone names the host rapidoN; a bad stty is ignored.
    script(
        &root.join("probe.sh"),
        "echo \"host=$(hostname) size=$(stty size)\"\npoweroff -f\n",
    );
    let mut command = chrootvm_command();
    command
        .arg("--append")
        .arg("rapido.vm_num=7 rapido.stty=abc")
        .arg("--init")
        .arg("/probe.sh")
        .arg(&root);
    let vm = run(command);
    vm.check(
        vm.code() == Some(0) && vm.output().contains("host=rapido7 size="),
        "rapido.vm_num should name the host and a bad stty leave the size alone",
    );
    vm.check(
        vm.output()
            .contains("init: cannot use rapido.stty=abc: expected ROWS,COLS; ignored"),
        "a malformed stty should be reported and ignored",
    );
}

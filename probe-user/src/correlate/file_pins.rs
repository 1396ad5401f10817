//! `longterm-file-pin`: long-term writable pins of dirty-tracked shared file mappings, from
//! entry to outcome (refused, released by the caller in the same system call, or kept), and the
//! ledger of live pins every other rule attributes to.

use super::*;

impl Correlator {
    pub(super) fn on_pin(&mut self, pin: Pin) {
        self.stats.longterm_pins = self.stats.longterm_pins.saturating_add(pin.calls);
        self.attribute_unshares(&pin);
        if pin.ret > 0 {
            let held = live::NewPin {
                at_ns: pin.at_ns,
                start: pin.start,
                pages: pin.ret as u64,
                pinner: &pin.pinner,
                dontfork: pin.dontfork == Some(true),
            };
            // An evicted pin is still held by the kernel, just no longer tracked: counted, and
            // not reported as released.
            if self.live.push(live::key(&pin.task), &held).is_some() {
                self.stats.evicted_pins += 1;
            }
            self.tally_pin(&pin.task, pin.ret as u64);
        }
        let Some((file, first_index)) = self.dirty_tracked_file(&pin) else {
            self.stats.harmless_pins = self.stats.harmless_pins.saturating_add(pin.calls);
            return;
        };
        if pin.ret < 0 {
            let finding = self.pin_finding(&pin, file, Outcome::Refused, pin.nr_pages);
            self.record(finding);
        } else if pin.ret > 0 {
            let pages = pin.ret as u64;
            if self.pending.len() >= self.cfg.max_pins {
                self.pending.remove(0);
                self.stats.evicted_file_pins += 1;
            }
            self.pending.push(FilePin {
                pin,
                file,
                first_index,
                pages,
                unpinned: 0,
            });
        }
    }

    /// The file of a FOLL_WRITE long-term pin of a MAP_SHARED mapping that needs dirty tracking,
    /// with the page-cache index of `start`. The kernel's own verdict wins where it gave one.
    fn dirty_tracked_file(&self, pin: &Pin) -> Option<(FileId, u64)> {
        let write = self
            .flags
            .value("FOLL_WRITE")
            .is_some_and(|w| pin.gup_flags & w != 0);
        let vma = pin.vma.as_ref()?;
        let file = vma.file?;
        let needs = vma
            .needs_dirty_tracking
            .unwrap_or(!findings::exempt_from_dirty_tracking(file.fs_magic));
        let first_index = vma
            .pgoff
            .saturating_add(pin.start.saturating_sub(vma.start) >> PAGE_SHIFT);
        (write && vma.flags & VM_SHARED != 0 && needs).then_some((file, first_index))
    }

    pub(super) fn on_unpin(&mut self, unpin: &Unpin) {
        self.release_live(unpin);
        let same_call =
            |p: &FilePin| same_task(&p.pin.task, &unpin.task) && p.pin.syscall == unpin.syscall;
        if let Some(i) = self.pending.iter().rposition(same_call) {
            self.pending[i].unpinned = self.pending[i].unpinned.saturating_add(unpin.pages);
            if self.pending[i].unpinned >= self.pending[i].pages {
                let released = self.pending.remove(i);
                let finding = self.pin_finding(
                    &released.pin,
                    released.file,
                    Outcome::ReleasedByCaller,
                    released.pages,
                );
                self.record(finding);
            }
            return;
        }
        let owner = |p: &FilePin| same_process(&p.pin.task, &unpin.task);
        if let Some(i) = self.active.iter().position(owner) {
            self.active[i].unpinned = self.active[i].unpinned.saturating_add(unpin.pages);
            if self.active[i].unpinned >= self.active[i].pages {
                self.active.remove(i);
            }
        }
    }

    /// Unpins end live pins of the same process, oldest first.
    fn release_live(&mut self, unpin: &Unpin) {
        self.live.release(
            live::key(&unpin.task),
            unpin.pages,
            unpin.at_ns,
            &mut self.released,
        );
    }

    /// Pins of processes that exited are gone with them (the kernel unpins at teardown, often
    /// from a kworker pinwatch does not watch): released now, so live pages and memory stay true.
    pub fn prune_exited(&mut self, alive: impl Fn(u32) -> bool, now: u64) {
        let mut verdicts: Vec<(u32, bool)> = Vec::new();
        let mut is_alive = |tgid: u32| match verdicts.iter().find(|(t, _)| *t == tgid) {
            Some((_, v)) => *v,
            None => {
                let v = alive(tgid);
                verdicts.push((tgid, v));
                v
            }
        };
        let gone = self.live.prune(&mut is_alive, now);
        self.released.extend(gone);
        self.active.retain(|p| is_alive(p.pin.task.tgid));
    }

    fn tally_pin(&mut self, task: &Task, pages: u64) {
        let key = (task.tgid, task.start_ns);
        if let Some(t) = self.tally.get_mut(&key) {
            t.pinned_pages = t.pinned_pages.saturating_add(pages);
        } else if self.tally.len() < self.cfg.max_pins {
            self.tally.insert(
                key,
                ProcessPins {
                    process: process(task),
                    pinned_pages: pages,
                    held_pages: 0,
                },
            );
        } else {
            self.stats.untallied_processes += 1;
        }
    }

    /// Pending pins older than the settle window were kept by their caller: granted.
    pub(super) fn settle(&mut self, now: u64) {
        let settle_ns = self.cfg.settle_ns;
        let (due, keep): (Vec<FilePin>, Vec<FilePin>) = self
            .pending
            .drain(..)
            .partition(|p| p.pin.at_ns.saturating_add(settle_ns) <= now);
        self.pending = keep;
        for mut pin in due {
            let finding = self.pin_finding(&pin.pin, pin.file, Outcome::Granted, pin.pages);
            self.record(finding);
            pin.unpinned = 0;
            if self.active.len() >= self.cfg.max_pins {
                self.active.remove(0);
                self.stats.evicted_file_pins += 1;
            }
            self.active.push(pin);
        }
    }

    fn pin_finding(&self, pin: &Pin, file: FileId, outcome: Outcome, pages: u64) -> Finding {
        Finding {
            hazard: Hazard::LongtermFilePin,
            outcome,
            process: process(&pin.task),
            pinner: pin.pinner.to_string(),
            pages,
            page_size: None,
            folios: None,
            mapping: Mapping::of(file, pin.path.clone()),
            gup_flags: self.flags.decode(pin.gup_flags),
            first_ns: pin.at_ns,
            last_ns: pin.at_ns,
            advice: findings::advice(Hazard::LongtermFilePin, outcome),
        }
    }
}

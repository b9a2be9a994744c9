// The portal's only script, and nothing depends on it: every page works
// without it. It shows each time in the viewer's time zone with the RFC 3339
// time underneath, and adds a copy button beside secrets shown once.
'use strict';

(function () {
  const format = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short',
  });
  for (const el of document.querySelectorAll('time[datetime]')) {
    const at = new Date(el.getAttribute('datetime'));
    if (Number.isNaN(at.getTime())) continue;
    const utc = el.getAttribute('datetime');
    el.textContent = format.format(at);
    const under = document.createElement('span');
    under.className = 'utc';
    under.textContent = utc;
    el.appendChild(under);
  }
  const zone = document.getElementById('time-zone-note');
  if (zone) {
    zone.textContent = 'Times are shown in your time zone (' +
      Intl.DateTimeFormat().resolvedOptions().timeZone + '), with RFC 3339 (UTC) underneath.';
  }

  for (const button of document.querySelectorAll('button.copy[data-copy]')) {
    const source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = 'Copied';
      } catch {
        button.textContent = 'Select and copy it by hand';
      }
    });
  }
})();

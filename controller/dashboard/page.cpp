// The dashboard's one page: self-contained (no CDN, no external asset), so it works on an air-gapped
// controller. It polls /api/state every second and draws its charts on <canvas> with the small plotting
// function below. Each chart canvas carries data-points (the number of samples drawn) so tests can see
// from the DOM that a chart has data.
#include "controller/dashboard/dashboard.h"

namespace morph::dashboard {

const std::string& page_html() {
  static const std::string page = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Morph dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
 header{background:#1d2330;color:#fff;padding:10px 18px;display:flex;gap:24px;align-items:baseline}
 header h1{font-size:18px;margin:0} header .status{opacity:.8;font-size:13px}
 main{padding:12px 18px;display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:14px}
 section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 12px}
 section.wide{grid-column:1/-1}
 h2{font-size:15px;margin:0 0 6px} p.why{margin:0 0 8px;color:#5a6372;font-size:12.5px}
 table{border-collapse:collapse;width:100%;font-size:13px}
 th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eef0f3;white-space:nowrap}
 td.n{text-align:right;font-variant-numeric:tabular-nums}
 th{color:#5a6372;font-weight:600}
 .up{color:#1a7f37}.down{color:#c62828}.warn{color:#b26a00;font-weight:600}
 canvas{width:100%;height:220px;display:block}
 .legend{font-size:12px;color:#5a6372;margin-top:4px} .legend span{margin-right:12px}
 .empty{color:#8a93a3;font-style:italic}
</style></head>
<body>
<header><h1>Morph</h1><span class="status" id="status">connecting…</span></header>
<main>
 <section class="wide"><h2>Hosts</h2>
  <table id="hosts"><thead><tr><th>host</th><th>state</th><th>VMs</th><th>capacity</th></tr></thead><tbody></tbody></table></section>
 <section class="wide"><h2>VMs</h2>
  <p class="why">Latest interval. CPU % is on-CPU time (100 = one core); run-queue wait is the share of the VM's runnable time spent waiting for a CPU — the host-side "steal" that Morph's rescue bids react to.</p>
  <table id="vms"><thead><tr><th>VM</th><th>host</th><th>owner</th><th>SLA</th><th>CPU %</th><th>run-queue wait %</th><th>disk read</th><th>disk write</th><th>net rx</th><th>net tx</th><th>bought</th></tr></thead><tbody></tbody></table></section>
 <section><h2>CPU % per VM</h2><canvas class="kpi-chart" id="chart-cpu"></canvas><div class="legend" id="legend-cpu"></div></section>
 <section><h2>Run-queue wait % per VM</h2><canvas class="kpi-chart" id="chart-runq"></canvas><div class="legend" id="legend-runq"></div></section>
 <section><h2>Allocations bought (CPU millicores above baseline)</h2><canvas class="kpi-chart" id="chart-alloc"></canvas><div class="legend" id="legend-alloc"></div></section>
 <section><h2>Prices (µcredits per unit-second)</h2><canvas class="kpi-chart" id="chart-price"></canvas><div class="legend" id="legend-price"></div></section>
 <section class="wide"><h2>Allocations in force</h2>
  <table id="allocations"><thead><tr><th>bid</th><th>VM</th><th>account</th><th>resource</th><th>quantity</th><th>price</th><th>since</th></tr></thead><tbody></tbody></table></section>
 <section><h2>Recent shifts</h2>
  <table id="shifts"><thead><tr><th>time</th><th>VM</th><th>phase</th><th>settings</th></tr></thead><tbody></tbody></table></section>
 <section><h2>Recent bid outcomes</h2>
  <table id="bids"><thead><tr><th>time</th><th>bid</th><th>VM</th><th>resource</th><th>outcome</th><th>filled</th><th>max price</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
"use strict";
const COLORS=["#1f77b4","#d62728","#2ca02c","#ff7f0e","#9467bd","#8c564b","#e377c2","#17becf"];
function esc(s){return String(s).replace(/[&<>"']/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));}
function rate(b){if(b==null)return "";const u=["B/s","KiB/s","MiB/s","GiB/s"];let i=0;while(b>=1024&&i<3){b/=1024;i++;}return b.toFixed(i?1:0)+" "+u[i];}
function num(x,d){return x==null?"":Number(x).toFixed(d);}
function hms(t){return new Date(t*1000).toLocaleTimeString([], {hour12:false});}
function rows(id,html,cols,empty){document.querySelector("#"+id+" tbody").innerHTML=html.length?html.join(""):'<tr><td class="empty" colspan="'+cols+'">'+empty+'</td></tr>';}
// A line chart of series [{name,t:[],y:[]}] on a canvas; returns the number of points drawn.
function chart(id,series,unit){
 const cv=document.getElementById(id),dpr=window.devicePixelRatio||1,W=cv.clientWidth||500,H=cv.clientHeight||220;
 cv.width=W*dpr;cv.height=H*dpr;const g=cv.getContext("2d");g.scale(dpr,dpr);g.clearRect(0,0,W,H);
 const L=52,R=10,T=10,B=24;let t0=Infinity,t1=-Infinity,y1=0,n=0;
 for(const s of series)for(let i=0;i<s.t.length;i++){t0=Math.min(t0,s.t[i]);t1=Math.max(t1,s.t[i]);y1=Math.max(y1,s.y[i]);n++;}
 g.font="11px system-ui,sans-serif";g.fillStyle="#5a6372";g.strokeStyle="#e3e6eb";g.lineWidth=1;
 if(!n){g.fillText("waiting for data…",L,H/2);cv.dataset.points=0;return 0;}
 if(t1<=t0)t1=t0+1;if(y1<=0)y1=1;y1*=1.1;
 const X=t=>L+(t-t0)/(t1-t0)*(W-L-R),Y=y=>T+(1-y/y1)*(H-T-B);
 for(let k=0;k<=4;k++){const y=y1*k/4,py=Y(y);g.beginPath();g.moveTo(L,py);g.lineTo(W-R,py);g.stroke();g.fillText(y>=100?y.toFixed(0):y.toFixed(1),4,py+4);}
 g.fillText(hms(t0),L,H-6);const e=hms(t1);g.fillText(e,W-R-g.measureText(e).width,H-6);g.fillText(unit,L+4,T+10);
 series.forEach((s,i)=>{g.strokeStyle=COLORS[i%COLORS.length];g.lineWidth=1.6;g.beginPath();
  for(let k=0;k<s.t.length;k++){const x=X(s.t[k]),y=Y(s.y[k]);k?g.lineTo(x,y):g.moveTo(x,y);}g.stroke();});
 cv.dataset.points=n;return n;}
function legend(id,series){document.getElementById(id).innerHTML=series.map((s,i)=>'<span style="color:'+COLORS[i%COLORS.length]+'">■ '+esc(s.name)+' ('+s.t.length+' points)</span>').join("");}
function draw(id,series,unit){chart("chart-"+id,series,unit);legend("legend-"+id,series);}
function render(s){
 const st=document.getElementById("status");
 st.textContent=(s.incarnation?"controller incarnation "+s.incarnation+" · ":"")+s.events_seen+" events · "+s.vms.length+" VMs"+(s.updated?" · updated "+hms(s.updated):"")+(s.error?" · "+s.error:"");
 rows("hosts",s.hosts.map(h=>'<tr><td>'+esc(h.host)+'</td><td class="'+(h.up?"up":"down")+'">'+(h.up?"up":"down")+'</td><td class="n">'+h.vm_count+'</td><td>'+esc(Object.entries(h.capacity||{}).map(([k,v])=>k+" "+v).join(", "))+'</td></tr>'),4,"no host has said hello yet");
 const bought={};for(const a of s.allocations){const k=a.vm_uuid;bought[k]=(bought[k]||[]);bought[k].push(a.resource+" +"+a.quantity+" @"+a.price);}
 rows("vms",s.vms.map(v=>{const k=v.latest||{};return '<tr><td>'+esc(v.name||v.uuid)+'</td><td>'+esc(v.host)+'</td><td>'+esc(v.owner)+'</td><td>'+esc(v.sla)+'</td><td class="n">'+num(k.cpu_pct,1)+'</td><td class="n'+(k.runq_wait_pct>20?" warn":"")+'">'+num(k.runq_wait_pct,1)+'</td><td class="n">'+rate(k.disk_read_Bps)+'</td><td class="n">'+rate(k.disk_write_Bps)+'</td><td class="n">'+rate(k.net_rx_Bps)+'</td><td class="n">'+rate(k.net_tx_Bps)+'</td><td>'+esc((bought[v.uuid]||[]).join(", "))+'</td></tr>';}),11,"no VM reported yet");
 const name=v=>v.name||v.uuid;
 draw("cpu",s.vms.map(v=>({name:name(v),t:v.kpis.t,y:v.kpis.cpu_pct})),"%");
 draw("runq",s.vms.map(v=>({name:name(v),t:v.kpis.t,y:v.kpis.runq_wait_pct})),"%");
 draw("alloc",s.vms.filter(v=>v.allocated.cpu).map(v=>({name:name(v),t:v.allocated.cpu.t,y:v.allocated.cpu.quantity})),"millicores");
 draw("price",s.prices.filter(p=>p.t.length).map(p=>({name:p.book,t:p.t,y:p.price})),"µcr");
 rows("allocations",s.allocations.map(a=>'<tr><td class="n">'+a.bid_id+'</td><td>'+esc(a.vm)+'</td><td>'+esc(a.account)+'</td><td>'+esc(a.resource)+'</td><td class="n">'+a.quantity+'</td><td class="n">'+a.price+'</td><td>'+(a.since?hms(a.since):"")+'</td></tr>'),7,"nothing bought right now");
 rows("shifts",s.shifts.slice(-15).reverse().map(x=>'<tr><td>'+hms(x.t)+'</td><td>'+esc(x.vm)+'</td><td class="'+(x.error?"down":"")+'">'+esc(x.phase)+'</td><td>'+esc(x.adjustments+(x.error?" — "+x.error:""))+'</td></tr>'),4,"no shift yet");
 rows("bids",s.bids.slice(-15).reverse().map(b=>'<tr><td>'+hms(b.t)+'</td><td class="n">'+b.bid_id+'</td><td>'+esc(b.vm)+'</td><td>'+esc(b.resource)+'</td><td>'+esc(b.outcome+(b.reason?" ("+b.reason+")":""))+'</td><td class="n">'+b.filled+"/"+b.quantity+'</td><td class="n">'+b.max_price+'</td></tr>'),7,"no bid outcome yet");
}
async function tick(){
 try{const r=await fetch("/api/state?points=300",{cache:"no-store"});if(r.ok)render(await r.json());
  else document.getElementById("status").textContent="dashboard answered "+r.status;}
 catch(e){document.getElementById("status").textContent="dashboard unreachable: "+e;}
 setTimeout(tick,1000);}
tick();
</script>
</body></html>
)HTML";
  return page;
}

}  // namespace morph::dashboard

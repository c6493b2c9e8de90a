// The run viewer's script (mibe view). It reads the page's data block (mibe/boards/view_data.py writes
// it; the keys are the same words there) and draws rows with textContent only: a model output holding
// markup shows as text and runs nothing.
(function(){
'use strict';
var D=JSON.parse(document.getElementById('mibe-data').textContent);
var rows=D.rows,two=D.runs.length>1,PAGE=D.page,pin=null;
function $(id){return document.getElementById(id);}
function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;
  if(text!==undefined&&text!==null)e.textContent=String(text);return e;}
// A text from Python: a string, or pieces (string; [string] highlighted; number of characters cut).
function put(parent,v){if(v===undefined||v===null)return;if(!Array.isArray(v))v=[v];
  v.forEach(function(x){if(typeof x==='string')parent.appendChild(document.createTextNode(x));
    else if(typeof x==='number')
      parent.appendChild(el('span','cut',' … '+x.toLocaleString('en')+' characters cut … '));
    else parent.appendChild(el('mark',null,x[0]));});}
function plain(v){if(v===undefined||v===null)return '';if(!Array.isArray(v))return v;
  return v.map(function(x){return typeof x==='string'?x:typeof x==='number'?' ':x[0];}).join('');}
function pred(r){return r.predicted_labels?(r.predicted_labels.join(', ')||'(no label)'):r.withheld?'(not in this page)':plain(r.prediction_is_output?r.output:r.prediction);}
function gold(r){return r.gold_labels?r.gold_labels.join(', '):r.withheld?'(not in this page)':plain(r.gold);}
function short(s){return s.length>80?s.slice(0,79)+'…':s;}
function score(r){return r.score===null||r.score===undefined?'—':Number(r.score).toFixed(3);}
function flags(r){var f=[];if(r.parse_failure)f.push('parse failure');if(r.truncated_tokens)f.push('prompt cut by '+r.truncated_tokens+' tokens');
  if(r.empty_output)f.push('empty output');if(r.reasoning_truncated)f.push('reasoning truncated');return f.join('; ');}
function link(r){
  return '#doc='+encodeURIComponent(r.task)+'/'+encodeURIComponent(r.id)+(r.run?'&run='+(r.run+1):'');}
function field(dl,name,fill){dl.appendChild(el('dt',null,name));var dd=el('dd');fill(dd);dl.appendChild(dd);}
function pre(v){var p=el('pre');put(p,v);return p;}
function detail(r,withPrompt){
  var box=el('div'),a=el('a','permalink','link to this document');a.href=link(r);box.appendChild(a);
  if(two)box.appendChild(el('span','note',' run '+'AB'[r.run]+': '+D.runs[r.run]));
  if(r.withheld)box.appendChild(el('p','cred','Credentialed task: this page was written without its text '+
    '(ids, scores, flags and labels only).'));
  var dl=el('dl'),task=D.tasks[r.task];
  field(dl,'score',function(dd){dd.textContent=score(r);});
  if(r.predicted_labels||r.prediction!==undefined)field(dl,'prediction',function(dd){
    dd.appendChild(r.predicted_labels?el('span',null,pred(r)):pre(r.prediction));});
  if(r.prediction_is_output)field(dl,'prediction',function(dd){dd.textContent='the raw output (below), whole';});
  if(r.gold_labels||r.gold!==undefined)field(dl,'gold',function(dd){dd.appendChild(r.gold_labels?el('span',null,gold(r)):pre(r.gold));});
  if(flags(r))field(dl,'flags',function(dd){dd.textContent=flags(r);});
  if(r.paper_reading!==undefined)field(dl,'parsers',function(dd){dd.textContent='paper: '+r.paper_reading+'  ·  strict: '+r.strict_reading;});
  if(r.logprobs)field(dl,'log-likelihoods',function(dd){dd.textContent=r.logprobs.map(function(x,i){
    return (task.choices[i]===undefined?i:task.choices[i])+' '+x;}).join('  ·  ');});
  if(r.output!==undefined)field(dl,'raw output',function(dd){dd.appendChild(pre(r.output));
    if(r.predicted_labels)dd.appendChild(el('div','note',
      'highlighted: the first case-insensitive occurrence of the predicted label'));});
  if(r.reasoning!==undefined)field(dl,'reasoning',function(dd){dd.appendChild(pre(r.reasoning));});
  if(r.answer_text!==undefined)field(dl,'answer text',function(dd){dd.appendChild(pre(r.answer_text));});
  if(withPrompt&&r.prompt!==undefined)field(dl,'prompt',function(dd){dd.appendChild(pre(D.prompts[r.prompt]));});
  box.appendChild(dl);return box;}
function cells(tr,values){values.forEach(function(v){tr.appendChild(el('td',null,v));});}
// A table drawn a page at a time: only PAGE rows are in the DOM, whatever the number of samples.
function Table(id,pager,make,open){
  var t={items:[],page:0,opened:{},table:$(id),body:$(id).tBodies[0]};
  var cols=t.table.tHead.rows[0].cells.length;
  function expand(tr){var d=el('tr','more'),td=el('td','detail');td.colSpan=cols;
    td.appendChild(open(+tr.dataset.k));d.appendChild(td);tr.after(d);tr.classList.add('open');
    tr.setAttribute('aria-expanded','true');t.opened[tr.dataset.k]=true;}
  t.toggle=function(tr){var next=tr.nextElementSibling;
    if(next&&next.classList.contains('more')){next.remove();tr.classList.remove('open');
      tr.setAttribute('aria-expanded','false');delete t.opened[tr.dataset.k];}else expand(tr);};
  t.draw=function(){t.body.textContent='';var start=t.page*PAGE,end=Math.min(t.items.length,start+PAGE);
    for(var i=start;i<end;i++){var tr=make(t.items[i]);
      tr.className='row';tr.tabIndex=0;tr.dataset.k=t.items[i];
      tr.setAttribute('aria-expanded','false');t.body.appendChild(tr);if(t.opened[t.items[i]])expand(tr);}
    $(pager+'-info').textContent=t.items.length?'rows '+(start+1)+'–'+end+' of '+t.items.length:'no rows';
    $(pager+'-prev').disabled=t.page===0;$(pager+'-next').disabled=end>=t.items.length;
    t.table.dataset.count=t.items.length;};
  t.show=function(items){t.items=items;t.page=0;t.draw();};
  $(pager+'-prev').addEventListener('click',function(){t.page--;t.draw();});
  $(pager+'-next').addEventListener('click',function(){t.page++;t.draw();});
  t.body.addEventListener('click',function(e){if(e.target.closest('a'))return;
    var tr=e.target.closest('tr.row');if(tr)t.toggle(tr);});
  t.body.addEventListener('keydown',function(e){var tr=e.target;
    if(tr.classList.contains('row')&&(e.key==='Enter'||e.key===' ')){e.preventDefault();t.toggle(tr);}});
  return t;}
var samples=Table('rows','p',function(k){var r=rows[k],tr=el('tr');tr.dataset.id=r.id;tr.dataset.task=r.task;
  tr.dataset.run=r.run;cells(tr,(two?['AB'[r.run]]:[]).concat([r.task,r.id,score(r),short(pred(r)),short(gold(r)),flags(r)]));
  return tr;},function(k){return detail(rows[k],true);});
var F={},IDS=['f-run','f-task','f-outcome','f-pf','f-tr','f-em','f-rt','f-gold','f-pred','f-q'];
function val(id){var e=$(id);return e?e.value:'';}
function yes(v,want){return want===''||(want==='yes')===!!v;}
function hay(r){if(r._h===undefined)r._h=[r.id,r.task,(r.predicted_labels||[]).join(', '),(r.gold_labels||[]).join(', '),
  plain(r.prediction),plain(r.gold),r.prompt===undefined?'':plain(D.prompts[r.prompt]),
  plain(r.output),plain(r.reasoning),plain(r.answer_text),r.paper_reading||'',r.strict_reading||''].join('\n').toLowerCase();return r._h;}
function match(r){
  if(F.run!==''&&String(r.run)!==F.run)return false;if(F.task!==''&&r.task!==F.task)return false;
  var ok=r.score!==null&&r.score!==undefined&&r.score>=1-1e-9,bad=r.score!==null&&r.score!==undefined&&r.score<1-1e-9;
  if((F.outcome==='right'&&!ok)||(F.outcome==='wrong'&&!bad))return false;
  if(!yes(r.parse_failure,F.pf)||!yes(r.truncated_tokens,F.tr)||!yes(r.empty_output,F.em)||!yes(r.reasoning_truncated,F.rt))return false;
  if(F.gold!==''&&!(r.gold_labels&&r.gold_labels.indexOf(F.gold)>=0))return false;
  if(F.pred!==''&&!(r.predicted_labels&&r.predicted_labels.indexOf(F.pred)>=0))return false;
  return F.q===''||hay(r).indexOf(F.q)>=0;}
function apply(){
  F={run:val('f-run'),task:val('f-task'),outcome:val('f-outcome'),pf:val('f-pf'),tr:val('f-tr'),
    em:val('f-em'),rt:val('f-rt'),gold:val('f-gold'),pred:val('f-pred'),q:val('f-q').trim().toLowerCase()};
  var out=[];if(pin!==null)out=[pin];else for(var k=0;k<rows.length;k++)if(match(rows[k]))out.push(k);
  samples.show(out);
  $('rows-status').textContent=pin!==null?'One document (from a link); clear filters to list them all.':
    out.length+' of '+rows.length+' samples match.';}
function clear(){IDS.forEach(function(id){var e=$(id);if(e)e.value='';});pin=null;}
IDS.forEach(function(id){var e=$(id);if(!e)return;
  if(id==='f-q'){var timer=null;e.addEventListener('input',function(){clearTimeout(timer);
    timer=setTimeout(function(){pin=null;apply();},150);});}
  else e.addEventListener('change',function(){pin=null;apply();});});
$('reset').addEventListener('click',function(){clear();apply();});
// A cell starting with = + - @ (or a tab, CR) would run as a spreadsheet formula: prefix an apostrophe.
function csvField(s){s=String(s);if(/^[=+\-@\t\r]/.test(s))s="'"+s;
  return /[",\r\n]/.test(s)?'"'+s.replace(/"/g,'""')+'"':s;}
function csv(){var lines=['run,task,id'];samples.items.forEach(function(k){var r=rows[k];
  lines.push([D.runs[r.run],r.task,r.id].map(csvField).join(','));});return lines.join('\r\n')+'\r\n';}
$('export').addEventListener('click',function(){
  var url=URL.createObjectURL(new Blob([csv()],{type:'text/csv'})),a=el('a');
  a.href=url;a.download='mibe-view-ids.csv';document.body.appendChild(a);a.click();a.remove();
  setTimeout(function(){URL.revokeObjectURL(url);},1000);});
function pick(cell){clear();if($('f-run'))$('f-run').value=cell.dataset.run;
  $('f-task').value=cell.dataset.task;
  $('f-gold').value=cell.dataset.gold;$('f-pred').value=cell.dataset.pred;
  if(cell.dataset.pf)$('f-pf').value=cell.dataset.pf;apply();
  $('samples').scrollIntoView();var first=samples.body.querySelector('tr.row');if(first)first.focus();}
document.querySelectorAll('td.cm').forEach(function(cell){cell.addEventListener('click',function(){pick(cell);});
  cell.addEventListener('keydown',function(e){
    if(e.key==='Enter'||e.key===' '){e.preventDefault();pick(cell);}});});
function openHash(){var m=/^#doc=([^\/&]*)\/([^&]*)(?:&run=(\d+))?$/.exec(location.hash);if(!m)return false;
  var task=decodeURIComponent(m[1]),id=decodeURIComponent(m[2]),run=m[3]?+m[3]-1:0;
  for(var k=0;k<rows.length;k++){var r=rows[k];if(r.task===task&&r.id===id&&r.run===run){
    clear();pin=k;samples.opened={};samples.opened[k]=true;apply();
    var tr=samples.body.querySelector('tr.row');tr.focus();tr.scrollIntoView();return true;}}
  $('rows-status').textContent='No document '+id+' of task '+task+' in this page.';return false;}
window.addEventListener('hashchange',openHash);
if(two){var diffs=Table('diffs','d',function(j){var d=D.diffs[j],a=rows[d.a],b=rows[d.b],tr=el('tr');
    tr.dataset.id=a.id;tr.dataset.task=a.task;
    cells(tr,[a.task,a.id,short(pred(a)),score(a),short(pred(b)),score(b)]);return tr;},
  function(j){var d=D.diffs[j],a=rows[d.a],b=rows[d.b],box=el('div'),pair=el('div','pair');
    pair.appendChild(detail(a,false));pair.appendChild(detail(b,false));box.appendChild(pair);
    [a,b].forEach(function(r,i){if(r.prompt!==undefined&&(i===0||b.prompt!==a.prompt)){var dl=el('dl');
      var name=i===0&&b.prompt===a.prompt?'prompt (both runs)':'prompt, run '+'AB'[i];
      field(dl,name,function(dd){dd.appendChild(pre(D.prompts[r.prompt]));});
      box.appendChild(dl);}});return box;});
  var showDiffs=function(){var task=$('d-task').value,out=[];
    D.diffs.forEach(function(d,j){if(task===''||d.task===task)out.push(j);});diffs.show(out);
    $('diffs-status').textContent=out.length+' documents on which the runs disagree.';};
  $('d-task').addEventListener('change',showDiffs);showDiffs();}
window.mibeView={csv:csv,apply:apply};
if(!openHash())apply();
document.body.dataset.ready='1';
})();

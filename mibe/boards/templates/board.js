// The leaderboard page's sorting: click a header (again to reverse), or #sort=COLUMN[:asc|desc] on load.
(function(){
  function key(td){var v=td.getAttribute('data-v');if(v===null||v==='')return null;
    var n=Number(v);return isNaN(n)?v.toLowerCase():n;}
  function sortBy(th,dir){
    var table=th.closest('table'),body=table.tBodies[0],i=th.cellIndex;
    var rows=Array.prototype.slice.call(body.rows);
    if(!dir){dir=th.getAttribute('aria-sort')==='descending'?'ascending':'descending';
      if(th.getAttribute('data-type')==='text'&&!th.hasAttribute('aria-sort'))dir='ascending';}
    rows.sort(function(a,b){var x=key(a.cells[i]),y=key(b.cells[i]);
      if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
      var c=x<y?-1:x>y?1:0;return dir==='ascending'?c:-c;});
    rows.forEach(function(r){body.appendChild(r);});
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(h){h.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',dir);
    table.setAttribute('data-sorted',th.getAttribute('data-col')+':'+(dir==='ascending'?'asc':'desc'));
  }
  document.querySelectorAll('table.board thead th').forEach(function(th){
    th.addEventListener('click',function(){sortBy(th);});});
  var m=/#sort=([\w-]+)(?::(asc|desc))?/.exec(location.hash);
  if(m){var th=document.querySelector('th[data-col="'+m[1]+'"]');
    if(th)sortBy(th,m[2]==='asc'?'ascending':'descending');}
})();
